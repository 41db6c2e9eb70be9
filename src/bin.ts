#!/usr/bin/env node
console.log("core: under construction")
