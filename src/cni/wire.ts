// The forwarder's wire format (src/cni/forwarder.c speaks it): simple enough for a few lines of C with no JSON.
// Request: NAME=value entries, each ending in a NUL byte, an empty entry, then the plugin's stdin to the end.
// Reply: "EXIT STDOUT_BYTES\n", that many bytes of stdout, then stderr to the end.

import type { Reply } from './result.js'

export interface Request {
  readonly env: Readonly<Record<string, string>>
  readonly stdin: string
}

/** The variables of the CNI spec, the only ones the forwarder sends. */
export const CNI_VARIABLES = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const

/** decodeRequest reads one request; undefined when it is not in this format. Pure. */
export const decodeRequest = (data: Buffer): Request | undefined => {
  const env: Record<string, string> = {}
  let at = 0
  for (;;) {
    const end = data.indexOf(0, at)
    if (end < 0) return undefined
    const entry = data.subarray(at, end).toString()
    at = end + 1
    if (entry === '') break
    const eq = entry.indexOf('=')
    const name = entry.slice(0, eq)
    if (eq < 0 || !(CNI_VARIABLES as readonly string[]).includes(name)) return undefined
    env[name] = entry.slice(eq + 1)
  }
  return { env, stdin: data.subarray(at).toString() }
}

/** encodeReply writes a reply in the format above. Pure. */
export const encodeReply = (reply: Reply): Buffer => {
  const stdout = Buffer.from(reply.stdout)
  return Buffer.concat([Buffer.from(`${reply.exitCode} ${stdout.length}\n`), stdout, Buffer.from(reply.stderr)])
}
