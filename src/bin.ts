#!/usr/bin/env node
/** Entry point of the CLI bundle (`dist/core-main.cjs`), which the launcher (`launcher.ts`) loads. */
import { start } from "./Start.js"

start(process.argv)
