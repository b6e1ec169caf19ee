// What the plugin answers, per the CNI spec: a result or an error object on stdout, logs on stderr, and an exit
// code. Codes below 100 are the spec's; ours are 100 plus the exit code of the command that failed in the netns,
// so a runtime's log names the same failure the exit-code table in docs/reference.md does.

export const CNI_CODES = {
  incompatibleVersion: 1,
  invalidEnvironment: 4,
  decoding: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
} as const

/** The offset of our own codes: 100 + the exit code of init, verify or clean in the pod's netns. */
export const PLUGIN_CODE_BASE = 100

/**
 * A refusal or failure to answer with. `message` and `details` go to the runtime, which shows them to whoever can
 * read the pod's events: a tenant. `log` is for the node agent's own log only (what a file held, a command's whole
 * output), never part of the reply.
 */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
    readonly log = '',
  ) {
    super(message)
  }
}

export interface Reply {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
  /** For the node agent's log only: never sent to the plugin. */
  readonly log?: string
}

export const success = (stdout: string, stderr: string): Reply => ({ exitCode: 0, stdout, stderr })

/** errorReply renders the spec's error object; the message stays on one line for the runtime's event log. */
export const errorReply = (cniVersion: string, error: CniError, stderr: string): Reply => ({
  exitCode: 1,
  stdout: `${JSON.stringify({ cniVersion, code: error.code, msg: error.message.replace(/\s*\n\s*/g, ' '), details: error.details })}\n`,
  stderr,
  ...(error.log !== '' && { log: error.log }),
})
