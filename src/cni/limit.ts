// How many pods the node agent works on at once. A node starting dozens of sandboxes at once would otherwise run
// every request's tools side by side: on a few cores that makes every pod slow, not some pods fast, and memory grows
// with the burst. Requests wait in arrival order, each with a deadline: one still waiting then is answered "try
// again later" rather than kept past the runtime's patience.

export class QueueTimeout extends Error {
  constructor(
    readonly waitedMs: number,
    readonly slots: number,
  ) {
    super(`the node agent is busy: waited ${Math.round(waitedMs / 100) / 10} s for one of its ${slots} slots (ISTIO_NODE_AGENT_CONCURRENCY)`)
  }
}

export interface Limit {
  /** Runs `work` in a free slot, first come first served; rejects with QueueTimeout if none frees within `deadlineMs`. */
  run<T>(work: () => Promise<T>, deadlineMs: number): Promise<T>
  readonly running: number
  readonly waiting: number
}

/** createLimit: at most `slots` works at once. */
export const createLimit = (slots: number): Limit => {
  let running = 0
  const queue: (() => void)[] = []
  const release = (): void => {
    const next = queue.shift()
    // The slot passes straight to the next in line, so a newcomer cannot take it first.
    if (next) next()
    else running--
  }
  const acquire = (deadlineMs: number): Promise<void> => {
    if (running < slots && queue.length === 0) {
      running++
      return Promise.resolve()
    }
    const since = performance.now()
    return new Promise((resolve, reject) => {
      const start = (): void => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        queue.splice(queue.indexOf(start), 1)
        reject(new QueueTimeout(performance.now() - since, slots))
      }, deadlineMs)
      queue.push(start)
    })
  }
  return {
    run: async (work, deadlineMs) => {
      await acquire(deadlineMs)
      try {
        return await work()
      } finally {
        release()
      }
    },
    get running() {
      return running
    },
    get waiting() {
      return queue.length
    },
  }
}

export interface Serial {
  /** Runs `work` after every earlier work of the same key has ended. */
  run<T>(key: string, work: () => Promise<T>): Promise<T>
}

/**
 * createSerial: one work at a time per key (a netns path), so a pod's DEL never runs beside a repair of that pod,
 * and a repair queued behind a DEL sees the pod is no longer kept.
 */
export const createSerial = (): Serial => {
  const tails = new Map<string, Promise<void>>()
  return {
    run: async (key, work) => {
      const before = tails.get(key) ?? Promise.resolve()
      let done = (): void => undefined
      const mine = new Promise<void>(resolve => (done = resolve))
      const tail = before.then(() => mine)
      tails.set(key, tail)
      await before
      try {
        return await work()
      } finally {
        done()
        if (tails.get(key) === tail) tails.delete(key)
      }
    },
  }
}
