/**
 * A small static check for backtracking-prone regular expressions: finds the regex
 * literals of a TypeScript source (a mini lexer that skips strings, templates and
 * comments) and flags patterns where the engine can split one run of input between two
 * unbounded quantifiers in more than one way, which costs quadratic (or worse) time:
 * - adjacent: two unbounded quantified parts (`*`, `+`, `{n,}`, or a bound > 255) whose
 *   character sets overlap, with nothing mandatory between them (`[ \t]*(.*?)[ \t]*$`);
 * - nested: an unbounded quantifier on a group that itself holds one (`(a+)+`).
 * Character sets are computed by testing each of the 256 Latin-1 code points against the
 * atom, so classes, escapes and `.` need no parser of their own. A run is compared with
 * the characters the next unbounded part can start with. It over-approximates (a group's
 * run is the union of its parts): a false positive means "write it plainer".
 */

export interface RegexLiteral {
  source: string;
  flags: string;
  line: number;
}

const REGEX_PREFIX_WORDS = new Set(['return', 'typeof', 'case', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await']);

/** Regex literals in `text`, in order. */
export function regexLiterals(text: string): RegexLiteral[] {
  const out: RegexLiteral[] = [];
  let i = 0;
  let line = 1;
  let prev = ''; // last significant token (a char, or a word)
  const braces: Array<'code' | 'template'> = [];
  const n = text.length;
  const isWord = (c: string) => /[A-Za-z0-9_$]/.test(c);
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      for (let k = i; k < stop; k++) if (text[k] === '\n') line++;
      i = stop;
      continue;
    }
    if (c === "'" || c === '"') {
      i++;
      while (i < n && text[i] !== c && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
      i++;
      prev = 'str';
      continue;
    }
    if (c === '`' || (c === '}' && braces[braces.length - 1] === 'template')) {
      if (c === '}') braces.pop();
      i++;
      for (;;) {
        if (i >= n) break;
        const t = text[i]!;
        if (t === '\\') {
          i += 2;
          continue;
        }
        if (t === '\n') line++;
        if (t === '`') {
          i++;
          break;
        }
        if (t === '$' && text[i + 1] === '{') {
          braces.push('template');
          i += 2;
          break;
        }
        i++;
      }
      prev = text[i - 1] === '{' ? '{' : 'str';
      continue;
    }
    if (c === '{') braces.push('code');
    if (c === '}') braces.pop();
    if (c === '/') {
      const regexAllowed = prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev) || REGEX_PREFIX_WORDS.has(prev);
      if (regexAllowed) {
        let j = i + 1;
        let inClass = false;
        while (j < n && text[j] !== '\n') {
          const t = text[j]!;
          if (t === '\\') {
            j += 2;
            continue;
          }
          if (t === '[') inClass = true;
          else if (t === ']') inClass = false;
          else if (t === '/' && !inClass) break;
          j++;
        }
        const source = text.slice(i + 1, j);
        let k = j + 1;
        while (k < n && /[a-z]/.test(text[k]!)) k++;
        out.push({ source, flags: text.slice(j + 1, k), line });
        i = k;
        prev = 'regex';
        continue;
      }
    }
    if (isWord(c)) {
      let k = i;
      while (k < n && isWord(text[k]!)) k++;
      prev = text.slice(i, k);
      i = k;
      continue;
    }
    prev = c;
    i++;
  }
  return out;
}

interface Item {
  /** Every character the part can match. */
  set: boolean[];
  /** The characters it can start with. */
  first: boolean[];
  min: number;
  unbounded: boolean;
}

/** The characters a sequence can start with (through leading optional parts). */
function firstOf(seq: Item[]): boolean[] {
  const out = new Array<boolean>(256).fill(false);
  for (const it of seq) {
    for (let k = 0; k < 256; k++) if (it.first[k]) out[k] = true;
    if (it.min > 0) break;
  }
  return out;
}

/** Bounds above this count as unbounded (a {1,8192} run backtracks like a `+`). */
const LARGE_BOUND = 255;

class Analyzer {
  private i = 0;
  readonly problems: string[] = [];

  constructor(
    private readonly src: string,
    private readonly flags: string,
  ) {}

  run(): void {
    const alts = this.alternatives();
    for (const seq of alts) this.checkAdjacent(seq);
  }

  /** Parses alternatives until ')' or the end. */
  private alternatives(): Item[][] {
    const alts: Item[][] = [[]];
    while (this.i < this.src.length) {
      const c = this.src[this.i]!;
      if (c === ')') break;
      if (c === '|') {
        this.i++;
        alts.push([]);
        continue;
      }
      const seq = alts[alts.length - 1]!;
      if (c === '^' || c === '$') {
        this.i++;
        continue;
      }
      if (c === '\\' && /[bB]/.test(this.src[this.i + 1] ?? '')) {
        this.i += 2;
        continue;
      }
      if (c === '(') {
        this.i++;
        let lookaround = false;
        if (this.src[this.i] === '?') {
          const m = /^\?(?::|=|!|<=|<!|<[A-Za-z_][A-Za-z0-9_]*>)/.exec(this.src.slice(this.i));
          if (m) {
            lookaround = m[0] !== '?:' && !m[0].startsWith('?<') ? true : m[0] === '?<=' || m[0] === '?<!';
            this.i += m[0].length;
          }
        }
        const inner = this.alternatives();
        this.i++; // ')'
        for (const s of inner) this.checkAdjacent(s);
        const q = this.quantifier();
        if (lookaround) continue;
        const innerUnbounded = inner.some((s) => s.some((it) => it.unbounded));
        if (q.unbounded && innerUnbounded) this.problems.push(`nested unbounded quantifiers near offset ${this.i}`);
        if (q.plain && inner.length === 1) {
          seq.push(...inner[0]!);
          continue;
        }
        const set = new Array<boolean>(256).fill(false);
        for (const s of inner) for (const it of s) for (let k = 0; k < 256; k++) if (it.set[k]) set[k] = true;
        const first = new Array<boolean>(256).fill(false);
        for (const s of inner) {
          firstOf(s).forEach((v, k) => {
            first[k] ||= v;
          });
        }
        const innerMin = Math.min(...inner.map((s) => s.reduce((a, it) => a + it.min, 0)));
        seq.push({ set, first, min: q.min * innerMin, unbounded: q.unbounded || innerUnbounded });
        continue;
      }
      const atom = this.atom();
      const q = this.quantifier();
      const set = this.charSet(atom);
      seq.push({ set, first: set, min: q.min, unbounded: q.unbounded });
    }
    return alts;
  }

  private atom(): string {
    const s = this.src;
    const start = this.i;
    if (s[this.i] === '[') {
      this.i++;
      if (s[this.i] === '^') this.i++;
      if (s[this.i] === ']') this.i++;
      while (this.i < s.length && s[this.i] !== ']') this.i += s[this.i] === '\\' ? 2 : 1;
      this.i++;
    } else if (s[this.i] === '\\') {
      const m = /^\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|u\{[0-9a-fA-F]+\}|c[A-Za-z]|[pP]\{[^}]*\}|.)/.exec(s.slice(this.i));
      this.i += m ? m[0].length : 2;
    } else this.i++;
    return s.slice(start, this.i);
  }

  private quantifier(): { min: number; unbounded: boolean; plain: boolean } {
    const s = this.src;
    const c = s[this.i];
    let r = { min: 1, unbounded: false, plain: true };
    if (c === '*') r = { min: 0, unbounded: true, plain: false };
    else if (c === '+') r = { min: 1, unbounded: true, plain: false };
    else if (c === '?') r = { min: 0, unbounded: false, plain: false };
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.i));
      if (!m) return r;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.i += m[0].length - 1;
      r = { min, unbounded: max > LARGE_BOUND, plain: false };
    } else return r;
    this.i++;
    if (s[this.i] === '?') this.i++; // lazy: same backtracking
    return r;
  }

  private charSet(atom: string): boolean[] {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${atom})$`, this.flags.replace(/[gy]/g, '') + (this.flags.includes('s') ? '' : 's'));
    } catch {
      return new Array<boolean>(256).fill(true);
    }
    const set = new Array<boolean>(256);
    for (let k = 0; k < 256; k++) set[k] = re.test(String.fromCharCode(k));
    return set;
  }

  private checkAdjacent(seq: Item[]): void {
    for (let a = 0; a < seq.length; a++) {
      if (!seq[a]!.unbounded) continue;
      for (let b = a + 1; b < seq.length; b++) {
        const B = seq[b]!;
        if (B.unbounded && overlaps(seq[a]!.set, B.first)) {
          this.problems.push(`adjacent unbounded quantifiers over overlapping characters (parts ${a} and ${b})`);
          break;
        }
        if (B.min > 0) break;
      }
    }
  }
}

function overlaps(x: boolean[], y: boolean[]): boolean {
  for (let k = 0; k < 256; k++) if (x[k] && y[k]) return true;
  return false;
}

/** What is wrong with a pattern (empty when it is plain enough). */
export function regexProblems(source: string, flags = ''): string[] {
  const a = new Analyzer(source, flags);
  a.run();
  return a.problems;
}
