// The libc calls Node has no API for, through koffi (an FFI whose package ships prebuilt binaries, so the image
// needs no compiler). Loaded on first use only: init without a live probe never pays for it.

import { createRequire } from 'node:module'

export interface Libc {
  socket(domain: number, type: number, protocol: number): number
  connect(fd: number, address: Buffer, length: number): number
  bind(fd: number, address: Buffer, length: number): number
  listen(fd: number, backlog: number): number
  setsockopt(fd: number, level: number, name: number, value: Buffer, length: number): number
  getsockopt(fd: number, level: number, name: number, value: Buffer, length: number[]): number
  sendto(fd: number, data: Buffer, length: number, flags: number, address: Buffer, addressLength: number): number
  if_nametoindex(name: string): number
  close(fd: number): number
  execve(path: string, argv: (string | null)[], envp: (string | null)[]): number
  /** fcntl(fd, F_SETFD, flags): the only fcntl use here. */
  setFdFlags(fd: number, flags: number): number
  /** pidfd_open(2), through syscall(): glibc 2.36 has a wrapper, older ones do not. */
  pidfdOpen(pid: number): number
  /** pidfd_send_signal(2) with no siginfo and no flags; signal 0 only asks whether the process still exists. */
  pidfdSendSignal(pidfd: number, signal: number): number
  /** setns(2): moves the calling thread only into the namespace `fd` names. */
  setns(fd: number, nstype: number): number
  /** ioctl(2) without an argument (the nsfs requests NS_GET_USERNS and NS_GET_NSTYPE). */
  ioctl(fd: number, request: number): number
  /** renameat2(2) with AT_FDCWD: RENAME_NOREPLACE and RENAME_EXCHANGE, which rename(2) cannot ask for. */
  renameat2(from: string, to: string, flags: number): number
  /** capget(2)/capset(2) on the calling thread: a v3 header (8 bytes) and two 12-byte data structs. */
  capget(header: Buffer, data: Buffer): number
  capset(header: Buffer, data: Buffer): number
  prctl(option: number, arg2: number, arg3: number, arg4: number, arg5: number): number
  errno(): number
}

const AT_FDCWD = -100

const F_SETFD = 2
const SYS_PIDFD_SEND_SIGNAL = 424
const SYS_PIDFD_OPEN = 434

let libc: Libc | undefined

export const loadLibc = (): Libc => {
  if (!libc) {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi')
    const lib = koffi.load('libc.so.6')
    const fcntl = lib.func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number, type: string, value: number) => number
    const syscall = lib.func('long syscall(long number, ...)') as (number: number, ...typedArgs: unknown[]) => number
    const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)') as (fd: number, request: number) => number
    const renameat2 = lib.func('int renameat2(int, const char *, int, const char *, unsigned int)') as (
      fromDir: number,
      from: string,
      toDir: number,
      to: string,
      flags: number,
    ) => number
    libc = {
      socket: lib.func('int socket(int, int, int)'),
      connect: lib.func('int connect(int, const uint8_t *address, uint32_t length)'),
      bind: lib.func('int bind(int, const uint8_t *address, uint32_t length)'),
      listen: lib.func('int listen(int, int)'),
      setsockopt: lib.func('int setsockopt(int, int, int, const uint8_t *value, uint32_t length)'),
      getsockopt: lib.func('int getsockopt(int, int, int, _Out_ uint8_t *value, _Inout_ uint32_t *length)'),
      sendto: lib.func('long sendto(int, const uint8_t *data, size_t length, int flags, const uint8_t *address, uint32_t addressLength)'),
      if_nametoindex: lib.func('unsigned int if_nametoindex(const char *name)'),
      close: lib.func('int close(int)'),
      execve: lib.func('int execve(const char *path, const char **argv, const char **envp)'),
      setFdFlags: (fd: number, flags: number) => fcntl(fd, F_SETFD, 'int', flags),
      pidfdOpen: (pid: number) => syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0),
      pidfdSendSignal: (pidfd: number, signal: number) =>
        syscall(SYS_PIDFD_SEND_SIGNAL, 'int', pidfd, 'int', signal, 'void *', null, 'unsigned int', 0),
      setns: lib.func('int setns(int fd, int nstype)'),
      ioctl: (fd: number, request: number) => ioctl(fd, request),
      renameat2: (from: string, to: string, flags: number) => renameat2(AT_FDCWD, from, AT_FDCWD, to, flags),
      capget: lib.func('int capget(uint8_t *header, _Inout_ uint8_t *data)'),
      capset: lib.func('int capset(uint8_t *header, const uint8_t *data)'),
      prctl: lib.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)'),
      errno: () => koffi.errno(),
    } as Libc
  }
  return libc
}
