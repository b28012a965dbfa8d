import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicyFile, loadPolicyFolder, parsePolicySpec, policyFiles } from '../../src/cli/policy-file.js';
import { describeDiff, plan } from '../../src/cli/apply.js';
import { parseDestination } from '../../src/cli/check.js';
import { CompiledPolicy } from '../../src/policy/compiler.js';
import { MemorySource } from '../../src/policy/memory-source.js';
import { tempDir } from '../support/temp.js';

describe('the shipped policies/ folder', () => {
  it('every file validates, one policy per name', () => {
    const files = policyFiles('policies');
    expect(files.length).toBeGreaterThanOrEqual(4);
    const specs = loadPolicyFolder('policies');
    expect(specs.map((s) => s.name).sort()).toEqual(['agent-gateway-only', 'allow-all', 'deny-all', 'package-registries', 'public-dns-and-cidrs']);
    for (const f of files) expect(() => loadPolicyFile(f), f).not.toThrow();
  });

  it('package-registries admits what npm, pip, cargo, go and git fetch, and not look-alikes', () => {
    const spec = loadPolicyFolder('policies').find((s) => s.name === 'package-registries')!;
    const { name, description, ...egress } = spec;
    const cp = new CompiledPolicy(new MemorySource().putPolicy({ name, description, egress }), { agentGateway: [], mcpGateway: [], mirrors: [] });
    for (const h of [
      'registry.npmjs.org',
      'registry.yarnpkg.com',
      'pypi.org',
      'files.pythonhosted.org',
      'crates.io',
      'static.crates.io',
      'index.crates.io',
      'proxy.golang.org',
      'sum.golang.org',
      'github.com',
      'api.github.com',
      'codeload.github.com',
      'objects.githubusercontent.com',
      'raw.githubusercontent.com',
    ]) {
      expect(cp.matchName(h), h).toBeDefined();
    }
    for (const h of ['npmjs.org', 'githubusercontent.com', 'github.com.evil.com', 'evilgithub.com', 'gist.github.com', 'storage.googleapis.com', 'pypi.org.evil.net']) {
      expect(cp.matchName(h), h).toBeUndefined();
    }
  });
});

describe('policy file validation', () => {
  const bad = (data: unknown) => () => parsePolicySpec('x.yaml', data);
  it('rejects what the API rejects, naming the file and entry', () => {
    expect(bad({ name: 'a', allowed_hostnames: ['*.com'] })).toThrow(/x\.yaml: allowed_hostnames\[0\]: entry "\*\.com" is rejected/);
    expect(bad({ name: 'a', allowed_hostnames: ['ok.com', 'https://x.com'] })).toThrow(/allowed_hostnames\[1\]/);
    expect(bad({ name: 'a', allowed_cidrs: [{ cidr: '10.0.0.1/8' }] })).toThrow(/host bits must be zero/);
    expect(bad({ name: 'a', allowed_cidrs: [{ cidr: '10.0.0.1' }] })).toThrow(/prefix length/);
    expect(bad({ name: 'a', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 0 }] }] })).toThrow(/1 to 65535/);
    expect(bad({ name: 'a', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 90, end_port: 80 }] }] })).toThrow(/below port/);
    expect(bad({ name: 'a', allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 80, protocol: 'SCTP' }] }] })).toThrow(/TCP or UDP/);
    expect(bad({ name: 'a', allow_all: 'yes' })).toThrow(/true or false/);
    expect(bad({ name: 'a', allowed_hostname: ['x.com'] })).toThrow(/unknown field "allowed_hostname"/);
    expect(bad({ allowed_hostnames: [] })).toThrow(/"name"/);
    expect(bad([{ name: 'a' }])).toThrow(/one policy/);
  });

  it('normalises like the API stores', () => {
    expect(parsePolicySpec('x.json', { name: 'n', allowed_hostnames: ['GitHub.com.', 'github.com'], allow_all: true, allowed_cidrs: ['10.0.0.0/8', { cidr: '2001:DB8::/32', ports: [443, { port: 53, protocol: 'udp' }] }] })).toEqual({
      name: 'n',
      description: null,
      enforcement: 'enforce',
      allow_all: true,
      allow_devbox_to_devbox: true,
      allowed_hostnames: ['github.com'],
      allow_agent_gateway: false,
      allow_mcp_gateway: false,
      allow_runloop_mirrors: false,
      allowed_cidrs: [{ cidr: '10.0.0.0/8' }, { cidr: '2001:db8::/32', ports: [{ port: 443 }, { port: 53, protocol: 'UDP' }] }],
    });
  });

  it('reads enforcement (enforce or report) and refuses anything else', () => {
    expect(parsePolicySpec('x.yaml', { name: 'r', enforcement: 'report' }).enforcement).toBe('report');
    expect(() => parsePolicySpec('x.yaml', { name: 'r', enforcement: 'audit' })).toThrow(/x\.yaml: field "enforcement" must be one of enforce, report/);
  });

  it('a folder with two files naming the same policy is refused', () => {
    const dir = tempDir('pol');
    writeFileSync(join(dir, 'a.yaml'), 'name: same\n');
    writeFileSync(join(dir, 'b.json'), '{"name":"same"}');
    writeFileSync(join(dir, 'README.md'), 'ignored');
    expect(() => loadPolicyFolder(dir)).toThrow(/b\.json: policy name "same" is also used by a\.yaml/);
  });
});

describe('apply planning', () => {
  const view = (name: string, egress: Record<string, unknown>) => ({
    id: `npol_${name}`,
    name,
    description: null,
    egress: { allow_all: false, allow_devbox_to_devbox: false, allowed_hostnames: [], allow_agent_gateway: false, allow_mcp_gateway: false, allow_runloop_mirrors: false, allowed_cidrs: [], ...egress },
  });
  const spec = (name: string, data: Record<string, unknown> = {}) => parsePolicySpec('t', { name, ...data });

  it('creates, updates, leaves alone and (with prune) deletes by name', () => {
    const current = [view('keep', { allowed_hostnames: ['a.com'] }), view('edit', { allowed_hostnames: ['a.com', 'b.com'] }), view('old', {})];
    const wanted = [spec('keep', { allowed_hostnames: ['a.com'] }), spec('edit', { allowed_hostnames: ['b.com', 'c.com', 'd.com'], allow_all: true }), spec('new')];
    expect(plan(current, wanted, false).map((c) => c.op)).toEqual(['unchanged', 'update', 'create']);
    const changes = plan(current, wanted, true);
    expect(changes.map((c) => `${c.op} ${c.name}`)).toEqual(['unchanged keep', 'update edit', 'create new', 'delete old']);
    expect(changes[1]).toMatchObject({ what: ['allowed_hostnames +2 −1', 'allow_all false→true', 'allow_devbox_to_devbox false→true'] });
  });

  it('order and spelling of entries do not count as changes', () => {
    expect(describeDiff(view('x', { allowed_hostnames: ['b.com', 'a.com'] }), spec('x', { allowed_hostnames: ['A.com', 'b.com.'] }))).toEqual([]);
    expect(describeDiff(view('x', { allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [{ port: 53, protocol: 'UDP' }, { port: 80 }] }] }), spec('x', { allowed_cidrs: [{ cidr: '10.0.0.0/8', ports: [80, { port: 53, protocol: 'UDP' }] }] }))).toEqual([]);
  });
});

describe('check destination parsing', () => {
  it.each([
    ['github.com', 'github.com', 443],
    ['github.com:22', 'github.com', 22],
    ['[::1]:8080', '[::1]', 8080],
    ['[2001:db8::1]', '[2001:db8::1]', 443],
    ['2001:db8::1', '2001:db8::1', 443],
    ['127.1:80', '127.1', 80],
  ])('%s', (text, host, port) => expect(parseDestination(text)).toEqual({ host, port }));

  it('rejects bad ports', () => {
    expect(() => parseDestination('a.com:0')).toThrow();
    expect(() => parseDestination('a.com:70000')).toThrow();
    expect(() => parseDestination('a.com:http')).toThrow();
  });
});
