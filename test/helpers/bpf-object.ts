// A minimal eBPF object file, written here so the kernel tests can attach a real BPF program with tc or ip without
// a compiler: an ELF64 relocatable (little-endian, machine EM_BPF) with one program section, its function symbol
// and a GPL license section, which is what libbpf (tc's and ip's loader) needs to load a program. Facts from the ELF
// and BPF instruction formats; nothing here is taken from another project.

import { writeFileSync } from 'node:fs'

/** One eBPF instruction: opcode, dst and src registers, 16-bit offset, 32-bit immediate. */
const insn = (code: number, dst: number, src: number, off: number, imm: number): Buffer => {
  const b = Buffer.alloc(8)
  b.writeUInt8(code, 0)
  b.writeUInt8((src << 4) | dst, 1)
  b.writeInt16LE(off, 2)
  b.writeInt32LE(imm, 4)
  return b
}

// BPF_ALU64 | BPF_MOV | BPF_K, BPF_JMP | BPF_CALL, BPF_JMP | BPF_EXIT
const MOV64_IMM = 0xb7
const CALL = 0x85
const EXIT = 0x95
/** The kernel helper bpf_redirect(ifindex, flags). */
const BPF_FUNC_REDIRECT = 23

/** Programs the tests attach: one that lets every packet through, one that redirects every packet to a device. */
export const PROGRAMS = {
  /** TC_ACT_OK (0) for tc, XDP_PASS (2) for XDP. */
  pass: (verdict: number): Buffer => Buffer.concat([insn(MOV64_IMM, 0, 0, 0, verdict), insn(EXIT, 0, 0, 0, 0)]),
  /** bpf_redirect(ifindex, 0), whose return is TC_ACT_REDIRECT: the packet goes out of that device. */
  redirect: (ifindex: number): Buffer =>
    Buffer.concat([insn(MOV64_IMM, 1, 0, 0, ifindex), insn(MOV64_IMM, 2, 0, 0, 0), insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT), insn(EXIT, 0, 0, 0, 0)]),
}

const align = (n: number, to: number): number => Math.ceil(n / to) * to

/** bpfObject returns the bytes of an object file holding `code` in section `section` as function `prog`. */
export const bpfObject = (section: string, code: Buffer): Buffer => {
  const license = Buffer.from('GPL\0')
  // String table: "", section names, the symbol name.
  const names = ['', '.strtab', section, 'license', '.symtab', 'prog']
  const offsets = new Map<string, number>()
  let strtab = Buffer.alloc(0)
  for (const name of names) {
    offsets.set(name, strtab.length)
    strtab = Buffer.concat([strtab, Buffer.from(`${name}\0`)])
  }
  // Symbol table: the null symbol, then `prog`, a global function in section 2 covering the code.
  const symtab = Buffer.alloc(48)
  symtab.writeUInt32LE(offsets.get('prog')!, 24)
  symtab.writeUInt8(0x12, 28) // STB_GLOBAL << 4 | STT_FUNC
  symtab.writeUInt16LE(2, 30)
  symtab.writeBigUInt64LE(BigInt(code.length), 40)
  // Layout: header (64), code, license, symtab (8-aligned), strtab, then the section headers (8-aligned).
  const codeAt = 64
  const licenseAt = codeAt + code.length
  const symtabAt = align(licenseAt + license.length, 8)
  const strtabAt = symtabAt + symtab.length
  const shAt = align(strtabAt + strtab.length, 8)
  const sections = [
    { name: '', type: 0, flags: 0, offset: 0, size: 0, link: 0, info: 0, align: 0, entsize: 0 },
    { name: '.strtab', type: 3, flags: 0, offset: strtabAt, size: strtab.length, link: 0, info: 0, align: 1, entsize: 0 },
    { name: section, type: 1, flags: 0x6, offset: codeAt, size: code.length, link: 0, info: 0, align: 8, entsize: 0 },
    { name: 'license', type: 1, flags: 0x3, offset: licenseAt, size: license.length, link: 0, info: 0, align: 1, entsize: 0 },
    { name: '.symtab', type: 2, flags: 0, offset: symtabAt, size: symtab.length, link: 1, info: 1, align: 8, entsize: 24 },
  ]
  const header = Buffer.alloc(64)
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(header) // ELF, 64-bit, little-endian, version 1
  header.writeUInt16LE(1, 16) // ET_REL
  header.writeUInt16LE(247, 18) // EM_BPF
  header.writeUInt32LE(1, 20)
  header.writeBigUInt64LE(BigInt(shAt), 40)
  header.writeUInt16LE(64, 52) // e_ehsize
  header.writeUInt16LE(64, 58) // e_shentsize
  header.writeUInt16LE(sections.length, 60)
  header.writeUInt16LE(1, 62) // e_shstrndx: .strtab
  const table = Buffer.alloc(64 * sections.length)
  sections.forEach((s, i) => {
    const at = 64 * i
    table.writeUInt32LE(offsets.get(s.name)!, at)
    table.writeUInt32LE(s.type, at + 4)
    table.writeBigUInt64LE(BigInt(s.flags), at + 8)
    table.writeBigUInt64LE(BigInt(s.offset), at + 24)
    table.writeBigUInt64LE(BigInt(s.size), at + 32)
    table.writeUInt32LE(s.link, at + 40)
    table.writeUInt32LE(s.info, at + 44)
    table.writeBigUInt64LE(BigInt(s.align), at + 48)
    table.writeBigUInt64LE(BigInt(s.entsize), at + 56)
  })
  const out = Buffer.alloc(shAt + table.length)
  header.copy(out, 0)
  code.copy(out, codeAt)
  license.copy(out, licenseAt)
  symtab.copy(out, symtabAt)
  strtab.copy(out, strtabAt)
  table.copy(out, shAt)
  return out
}

/** Writes an object to `path` for tc (`bpf da obj PATH sec SECTION`) or ip (`xdpgeneric obj PATH sec SECTION`). */
export const writeBpfObject = (path: string, section: string, code: Buffer): string => {
  writeFileSync(path, bpfObject(section, code))
  return path
}
