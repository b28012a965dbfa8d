/**
 * @jazzer.js/fuzzer 4.0.0 ships only a prebuilt addon, built with glibc ≥ 2.38 and GCC 13: it
 * needs `__isoc23_strtol`, `__isoc23_strtoul` (GLIBC_2.38) and `std::ios_base_library_init`
 * (GLIBCXX_3.4.32), which Debian 12 (glibc 2.36, libstdc++ of GCC 12) lacks.
 * Its source build cannot run here either: its CMake fetches a fork of LLVM's compiler-rt
 * from GitHub. So, on such a system only, the fuzz runner:
 * - marks those two version requirements of the addon weak (one flag bit each in
 *   .gnu.version_r), so the loader no longer refuses the file;
 * - builds a 3-function shim and preloads it: the two strto* names → strtol/strtoul
 *   (identical but for C23 "0b" prefixes, which libFuzzer's flag parsing never sees), and
 *   ios_base_library_init → the static ios_base::Init that GCC 12's <iostream> relies on.
 * Nothing changes on a system whose glibc has 2.38.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const SHT_GNU_VERNEED = 0x6ffffffe;
const VER_FLG_WEAK = 0x2;
const NEEDED = ['GLIBC_2.38', 'GLIBCXX_3.4.32'];

function addonPath(): string {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@jazzer.js/fuzzer/package.json');
  return join(pkg, '..', 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

/** Sets VER_FLG_WEAK on the vernaux entry named `version`; true when the file changed. */
export function weakenVersions(elf: Buffer, versions: readonly string[]): boolean {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return { type: elf.readUInt32LE(at + 4), offset: Number(elf.readBigUInt64LE(at + 0x18)), link: elf.readUInt32LE(at + 0x28), info: elf.readUInt32LE(at + 0x2c) };
  };
  let changed = false;
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = section(s.link).offset;
    const name = (off: number) => elf.toString('latin1', strtab + off, elf.indexOf(0, strtab + off));
    let vn = s.offset;
    for (let n = 0; n < s.info; n++) {
      const cnt = elf.readUInt16LE(vn + 2);
      let aux = vn + elf.readUInt32LE(vn + 8);
      for (let k = 0; k < cnt; k++) {
        const flags = elf.readUInt16LE(aux + 4);
        if (versions.includes(name(elf.readUInt32LE(aux + 8))) && (flags & VER_FLG_WEAK) === 0) {
          elf.writeUInt16LE(flags | VER_FLG_WEAK, aux + 4);
          changed = true;
        }
        aux += elf.readUInt32LE(aux + 12);
      }
      vn += elf.readUInt32LE(vn + 12);
    }
  }
  return changed;
}

function glibcHas238(): boolean {
  const v = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  if (v === undefined) return true; // not glibc: nothing to do
  const [major, minor] = v.split('.').map(Number);
  return major! > 2 || (major === 2 && minor! >= 38);
}

/**
 * Makes the jazzer addon loadable here. Returns environment additions for the fuzzing
 * process (LD_PRELOAD of the shim), empty when none are needed.
 */
export function jazzerCompat(cacheDir: string): Record<string, string> {
  if (process.platform !== 'linux' || glibcHas238()) return {};
  const addon = addonPath();
  const elf = readFileSync(addon);
  if (weakenVersions(elf, NEEDED)) writeFileSync(addon, elf);
  mkdirSync(cacheDir, { recursive: true });
  const shim = join(cacheDir, 'libjazzer-compat.so');
  if (!existsSync(shim)) {
    const src = join(cacheDir, 'compat.cc');
    const map = join(cacheDir, 'compat.map');
    writeFileSync(
      src,
      [
        '#include <cstdlib>',
        '#include <ios>',
        'extern "C" long __isoc23_strtol(const char *s, char **e, int b) { return std::strtol(s, e, b); }',
        'extern "C" unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return std::strtoul(s, e, b); }',
        'namespace std { void ios_base_library_init() { static ios_base::Init init; } }',
        '',
      ].join('\n'),
    );
    writeFileSync(map, ['GLIBC_2.38 { global: __isoc23_strtol; __isoc23_strtoul; };', 'GLIBCXX_3.4.32 { global: _ZSt21ios_base_library_initv; };', 'LOCAL { local: *; };', ''].join('\n'));
    execFileSync('c++', ['-O2', '-shared', '-fPIC', `-Wl,--version-script=${map}`, '-o', shim, src], { stdio: 'inherit' });
  }
  const prior = process.env.LD_PRELOAD;
  return { LD_PRELOAD: prior ? `${shim}:${prior}` : shim };
}
