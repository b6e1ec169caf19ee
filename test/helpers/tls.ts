// Certificates for the webhook tests, made with openssl as an operator (or cert-manager) would: a CA, and a
// server certificate for localhost and 127.0.0.1 signed by it. Each call makes a new key.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { runForStatus } from '../../src/exec/processes.js'

const openssl = async (args: string[]): Promise<void> => {
  const result = await runForStatus('openssl', args)
  if (result.exitCode !== 0) throw new Error(`openssl ${args.join(' ')} exited ${result.exitCode}: ${result.output}`)
}

export interface Ca {
  readonly cert: string
  readonly key: string
}

const scratch = (): string => {
  const dir = mkdtempSync(`${tmpdir()}/sr-tls-`)
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A self-signed CA (P-256, one day). */
export const makeCa = async (): Promise<Ca> => {
  const dir = scratch()
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=sr-test-ca',
    '-keyout',
    `${dir}/ca.key`,
    '-out',
    `${dir}/ca.crt`,
  ])
  return { cert: readFileSync(`${dir}/ca.crt`, 'utf8'), key: readFileSync(`${dir}/ca.key`, 'utf8') }
}

/** A server certificate and its key, for `names` (DNS names; IPs as IP:...), signed by `ca`. */
export const makeServerCert = async (
  ca: Ca,
  names: readonly string[] = ['DNS:localhost', 'IP:127.0.0.1'],
): Promise<{ cert: string; key: string }> => {
  const dir = scratch()
  writeFileSync(`${dir}/ca.crt`, ca.cert)
  writeFileSync(`${dir}/ca.key`, ca.key)
  writeFileSync(`${dir}/ext`, `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\n`)
  await openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=sr-webhook',
    '-keyout',
    `${dir}/tls.key`,
    '-out',
    `${dir}/tls.csr`,
  ])
  await openssl([
    'x509',
    '-req',
    '-in',
    `${dir}/tls.csr`,
    '-CA',
    `${dir}/ca.crt`,
    '-CAkey',
    `${dir}/ca.key`,
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    `${dir}/ext`,
    '-out',
    `${dir}/tls.crt`,
  ])
  return { cert: readFileSync(`${dir}/tls.crt`, 'utf8'), key: readFileSync(`${dir}/tls.key`, 'utf8') }
}
