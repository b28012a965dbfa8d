/** The fuzz targets (test/fuzz/targets/<name>.ts) and how each is run. */
export interface TargetSpec {
  /** Largest input libFuzzer makes (the door's own limit where it has one). */
  maxLen: number;
  /** libFuzzer hang time-out for one input, ms (the CPU guard in each target is tighter). */
  timeoutMs: number;
  /** A dictionary in test/fuzz/dict/. */
  dict?: string;
}

export const TARGETS: Record<string, TargetSpec> = {
  'http-request-head': { maxLen: 16384, timeoutMs: 2000, dict: 'http.dict' },
  'http-response-head': { maxLen: 16384, timeoutMs: 2000, dict: 'http.dict' },
  'http-chunked': { maxLen: 8192, timeoutMs: 2000, dict: 'http.dict' },
  'connect-line': { maxLen: 2048, timeoutMs: 2000, dict: 'http.dict' },
  socks5: { maxLen: 1024, timeoutMs: 2000 },
  clienthello: { maxLen: 8192, timeoutMs: 2000 },
  'tls-handshake-window': { maxLen: 8192, timeoutMs: 2000 },
  'dns-wire': { maxLen: 4096, timeoutMs: 2000 },
  hostname: { maxLen: 1200, timeoutMs: 2000, dict: 'hostname.dict' },
  'policy-file': { maxLen: 1024, timeoutMs: 4000, dict: 'policy.dict' },
  'policy-compiler': { maxLen: 4096, timeoutMs: 4000, dict: 'hostname.dict' },
  'api-hostnames': { maxLen: 2048, timeoutMs: 2000, dict: 'hostname.dict' },
  'mcp-hub': { maxLen: 8192, timeoutMs: 2000 },
};
