import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { makeLock } from "../src/supervisor/ServiceEntry.js"

const nothing = () => {}

describe("a service's lock", () => {
  it.effect("is handed to its waiters in turn, one holder at a time", () =>
    Effect.gen(function* () {
      const lock = makeLock()
      const order: Array<string> = []
      yield* lock.take(nothing)
      const waiter = (name: string) =>
        Effect.fork(lock.withLock(Effect.sync(() => order.push(name)).pipe(Effect.zipRight(Effect.yieldNow()))))
      const a = yield* waiter("a")
      const b = yield* waiter("b")
      yield* Effect.yieldNow()
      expect(order).toEqual([])
      lock.release()
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      expect(order).toEqual(["a", "b"])
      // free again: taken at once
      let taken = false
      yield* lock.take(() => {
        taken = true
      })
      expect(taken).toBe(true)
    })
  )

  it.effect("withLock can be interrupted while it waits, and then never runs its effect", () =>
    Effect.gen(function* () {
      const lock = makeLock()
      yield* lock.take(nothing)
      let ran = false
      const waiting = yield* Effect.fork(
        lock.withLock(
          Effect.sync(() => {
            ran = true
          })
        )
      )
      yield* Effect.yieldNow()
      // returns while the lock is still held elsewhere
      yield* Fiber.interrupt(waiting)
      lock.release()
      let taken = false
      yield* lock.take(() => {
        taken = true
      })
      expect(taken).toBe(true)
      expect(ran).toBe(false)
    })
  )

  it.effect("a waiter interrupted as the lock is handed to it gives it on, not keeps it", () =>
    Effect.gen(function* () {
      const lock = makeLock()
      yield* lock.take(nothing)
      const waiter = yield* Effect.fork(lock.withLock(Effect.void))
      const after = yield* Effect.fork(lock.withLock(Effect.void))
      yield* Effect.yieldNow()
      // the interruption reaches the waiter first, then the lock: taken, and given back by its own release
      waiter.unsafeInterruptAsFork(waiter.id())
      lock.release()
      yield* Fiber.await(waiter)
      yield* Fiber.join(after)
      yield* lock.take(nothing)
    })
  )
})
