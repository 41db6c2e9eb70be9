import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { makeLock } from "../src/supervisor/ServiceEntry.js"

describe("a service's lock", () => {
  it.effect("is handed to its waiters in turn, one holder at a time", () =>
    Effect.gen(function* () {
      const lock = makeLock()
      const order: Array<string> = []
      yield* lock.take
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
      yield* lock.take
      lock.release()
    })
  )

  it.effect("a waiter interrupted before its turn never holds it", () =>
    Effect.gen(function* () {
      const lock = makeLock()
      yield* lock.take
      const gone = yield* Effect.fork(lock.take)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(gone)
      lock.release()
      const next = yield* Effect.fork(lock.take)
      yield* Fiber.join(next)
      lock.release()
    })
  )

  it.effect("a waiter interrupted as the lock is handed to it gives it on, not keeps it", () =>
    Effect.gen(function* () {
      const lock = makeLock()
      yield* lock.take
      const waiter = yield* Effect.fork(lock.take)
      const after = yield* Effect.fork(lock.take)
      yield* Effect.yieldNow()
      // the interruption reaches the waiter first, then the lock: its resumption is dropped
      waiter.unsafeInterruptAsFork(waiter.id())
      lock.release()
      expect((yield* Fiber.await(waiter))._tag).toBe("Failure")
      // the lock went on to the next waiter
      yield* Fiber.join(after)
      lock.release()
      yield* lock.take
    })
  )
})
