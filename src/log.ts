// Output for people and for log pipelines: a report per command on stdout, errors on stderr, either as readable
// text or as one JSON object per line (ISTIO_LOG_FORMAT=json), so a pod's log can be parsed.

import type { LogFormat } from './settings/types.js'

export type Fields = Readonly<Record<string, unknown>>

export interface Output {
  write(text: string): void
  error(text: string): void
}

export interface Logger {
  /** A command's report: a title line and labelled sections in text, one object in JSON. */
  report(event: string, title: string, sections: Fields): void
  /** One event line: the proxy agent's start, exit and restart, the demo's steps. */
  event(event: string, message: string, fields?: Fields): void
  error(code: string, message: string, details?: readonly string[]): void
}

// Text from outside (a tool's stderr, a cause's message) may hold newlines or NULs: escaped as JSON does, so an
// error stays one line per part whatever it quotes. A tab breaks no line, and nft indents its rules with tabs,
// so a detail line (an nft diff) keeps them.
const CONTROL = /[\u0000-\u001f\u007f]/g
const CONTROL_BUT_TAB = /[\u0000-\u0008\u000a-\u001f\u007f]/g
const escapeWith =
  (pattern: RegExp) =>
  (text: string): string =>
    text.replace(pattern, c => JSON.stringify(c).slice(1, -1))
export const escapeControl = escapeWith(CONTROL)
const escapeDetail = escapeWith(CONTROL_BUT_TAB)

const textOf = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value))

const linesOf = (value: unknown): string[] => {
  if (Array.isArray(value)) return value.map(textOf)
  if (value !== null && typeof value === 'object') return Object.entries(value).map(([k, v]) => `${k}=${textOf(v)}`)
  return [textOf(value)]
}

const indentSection = (label: string, value: unknown): string => {
  const lines = linesOf(value)
  return lines.map((line, i) => `  ${(i === 0 ? label : '').padEnd(10)} ${line}`).join('\n')
}

export const createLogger = (format: LogFormat, out: Output): Logger =>
  format === 'json'
    ? {
        report: (event, title, sections) => out.write(`${JSON.stringify({ event, message: title, ...sections })}\n`),
        event: (event, message, fields = {}) => out.error(`${JSON.stringify({ event, message, ...fields })}\n`),
        error: (code, message, details = []) =>
          out.error(`${JSON.stringify({ event: 'error', code, message, ...(details.length > 0 && { details }) })}\n`),
      }
    : {
        report: (_event, title, sections) => out.write(`${[title, ...Object.entries(sections).map(([k, v]) => indentSection(k, v))].join('\n')}\n`),
        event: (event, message) => out.error(`sidecar-redirect ${event}: ${message}\n`),
        error: (code, message, details = []) =>
          out.error(`${[`sidecar-redirect: ${escapeControl(message)} [${code}]`, ...details.map(d => `  ${escapeDetail(d)}`)].join('\n')}\n`),
      }

/** The levels of Istio's logs, least severe first; `none` logs nothing. */
const ISTIO_LEVEL_ORDER = ['debug', 'info', 'warn', 'error', 'fatal', 'none'] as const

export interface IstioLogOptions {
  readonly json: boolean
  /** The least level written. */
  readonly level: (typeof ISTIO_LEVEL_ORDER)[number]
  /** Writes one finished line (with its newline) to every target. */
  readonly write: (line: string) => void
  readonly now?: () => Date
}

// Istio's log lines (pilot-agent's): `2006-01-02T15:04:05.000000Z<TAB>level<TAB>message` in text, or one JSON object
// with `level`, `time` and `msg` per line; with --log_as_json every field of a report is a key of its line.
const istioTime = (date: Date): string => `${date.toISOString().slice(0, 23)}000Z`

/** createIstioLogger is a Logger writing in Istio's log format, for the `istio-iptables` command. */
export const createIstioLogger = ({ json, level, write, now = () => new Date() }: IstioLogOptions): Logger => {
  const least = ISTIO_LEVEL_ORDER.indexOf(level)
  const line = (lvl: 'info' | 'warn' | 'error', msg: string, fields: Fields = {}): void => {
    if (ISTIO_LEVEL_ORDER.indexOf(lvl) < least) return
    const time = istioTime(now())
    if (json) write(`${JSON.stringify({ level: lvl, time, msg, ...fields })}\n`)
    else {
      const extra = Object.entries(fields).map(([k, v]) => indentSection(k, v))
      write(`${[`${time}\t${lvl}\t${escapeControl(msg)}`, ...extra].join('\n')}\n`)
    }
  }
  return {
    report: (_event, title, sections) => line('info', title, sections),
    event: (event, message, fields = {}) => line(event === 'warning' ? 'warn' : 'info', message, fields),
    error: (code, message, details = []) => line('error', `${message} [${code}]`, details.length > 0 ? { details: details.map(escapeDetail) } : {}),
  }
}
