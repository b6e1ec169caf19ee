// One TCP SYN sent on a packet socket (AF_PACKET), as any process with CAP_NET_RAW can: the frame goes straight to
// the device, so no netfilter hook of the namespace sees it, our capture included. The demo of why a captured app
// must not have NET_RAW (the kernel tests count the SYN arriving at the remote); IPv4 only, which shows it.

import { parseIpv4 } from '../settings/cidr.js'
import { loadLibc } from './libc.js'

const AF_PACKET = 17
const SOCK_DGRAM = 2
const ETH_P_IP = 0x0800

/** The Internet checksum of `data` (RFC 1071). */
const checksum = (data: Buffer): number => {
  let sum = 0
  for (let i = 0; i < data.length; i += 2) sum += (data[i]! << 8) | (data[i + 1] ?? 0)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

/** The IPv4 packet of a TCP SYN from `from`:`sport` to `to`:`dport`, checksums filled in. Pure. */
export const synPacket = (from: string, to: string, sport: number, dport: number): Buffer => {
  const [src, dst] = [parseIpv4(from), parseIpv4(to)]
  if (!src || !dst) throw new Error(`${JSON.stringify(from)} and ${JSON.stringify(to)} must be IPv4 addresses`)
  const tcp = Buffer.alloc(20)
  tcp.writeUInt16BE(sport, 0)
  tcp.writeUInt16BE(dport, 2)
  tcp.writeUInt32BE(0x5eed0001, 4)
  tcp.writeUInt8(5 << 4, 12) // data offset: 5 words
  tcp.writeUInt8(0x02, 13) // SYN
  tcp.writeUInt16BE(64240, 14)
  const pseudo = Buffer.concat([Buffer.from(src), Buffer.from(dst), Buffer.from([0, 6, 0, tcp.length])])
  tcp.writeUInt16BE(checksum(Buffer.concat([pseudo, tcp])), 16)
  const ip = Buffer.alloc(20)
  ip.writeUInt8(0x45, 0)
  ip.writeUInt16BE(ip.length + tcp.length, 2)
  ip.writeUInt8(64, 8) // TTL
  ip.writeUInt8(6, 9) // TCP
  Buffer.from(src).copy(ip, 12)
  Buffer.from(dst).copy(ip, 16)
  ip.writeUInt16BE(checksum(ip), 10)
  return Buffer.concat([ip, tcp])
}

/** sendRawSyn sends the SYN out of `device` to the link-layer address `mac` (aa:bb:...); throws naming errno. */
export const sendRawSyn = (device: string, mac: string, from: string, to: string, dport: number): void => {
  const libc = loadLibc()
  const ifindex = libc.if_nametoindex(device)
  if (ifindex === 0) throw new Error(`no device ${device}`)
  const fd = libc.socket(AF_PACKET, SOCK_DGRAM, ((ETH_P_IP & 0xff) << 8) | (ETH_P_IP >> 8))
  if (fd < 0) throw new Error(`socket(AF_PACKET) failed: errno ${libc.errno()} (it needs CAP_NET_RAW)`)
  // struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8]
  const address = Buffer.alloc(20)
  address.writeUInt16LE(AF_PACKET, 0)
  address.writeUInt16BE(ETH_P_IP, 2)
  address.writeInt32LE(ifindex, 4)
  address.writeUInt8(6, 11)
  Buffer.from(mac.split(':').map(h => Number.parseInt(h, 16))).copy(address, 12)
  const packet = synPacket(from, to, 40000 + Math.floor(Math.random() * 20000), dport)
  const sent = libc.sendto(fd, packet, packet.length, 0, address, address.length)
  const errno = libc.errno()
  libc.close(fd)
  if (sent !== packet.length) throw new Error(`sendto failed: errno ${errno}`)
}
