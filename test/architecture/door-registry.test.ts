/**
 * The door registry (src/doors/registry.ts) is the one list of doors: each line's setting is a
 * listener setting of src/config.ts, names and labels are not shared, every listener setting
 * has its door, each door's flag is documented, and a door is given exactly the parts of the gateway
 * its line names — the store's credentials included, for the doors that ask for them.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { readFileSync } from 'node:fs';
import { OPTIONS, flagOf } from '../../src/config.js';
import { DOORS, type DoorEntry } from '../../src/doors/registry.js';
import type { DoorContext, DoorServices } from '../../src/doors/floor/context.js';
import type { CredentialSource } from '../../src/policy/credentials.js';
import type { PlaneStore } from '../../src/store/open.js';
import { credentialsOf, startDoor } from '../../src/wiring/gateway.js';

/**
 * Listener settings whose doors are being written: their registry lines come with their
 * folders. Remove a name here when its line lands (the last test says so).
 */
const NOT_YET_WIRED = new Set<string>([]);

const at = { host: '127.0.0.1', port: 0 };

/** A door that listens nowhere and keeps what it was given. */
function probe(needs: DoorEntry['needs'], seen: { ctx?: DoorContext }): DoorEntry {
  return {
    name: 'probe',
    labels: ['check'],
    setting: 'httpProxy',
    needs,
    clientDestinations: false,
    start: async (ctx) => {
      seen.ctx = ctx as DoorContext;
      return { name: 'probe', address: at, close: async () => {} };
    },
  };
}

/** Every part a door may ask for, each a distinct marker (the test only checks who gets which). */
function services(store: PlaneStore): DoorServices {
  const marker = (name: string) => ({ marker: name }) as never;
  return {
    config: marker('config'),
    engine: marker('engine'),
    gate: marker('gate'),
    tracker: marker('tracker'),
    resolver: marker('resolver'),
    sourceLimit: marker('sourceLimit'),
    upstreamPool: marker('upstreamPool'),
    dnsTcp: marker('dnsTcp'),
    log: pino({ level: 'silent' }),
    learnedShared: () => null,
    credentials: credentialsOf(store),
  };
}

const credentials: CredentialSource = {
  agentToken: () => undefined,
  gatewayConfig: () => undefined,
  mcpConfig: () => undefined,
  secretValue: () => undefined,
};

describe('the door registry', () => {
  it('names each listener once, with its own labels', () => {
    const names = DOORS.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    const labels = DOORS.flatMap((d) => d.labels);
    expect(new Set(labels).size).toBe(labels.length);
    const settings = DOORS.map((d) => d.setting);
    expect(new Set(settings).size).toBe(settings.length);
  });

  it('gives every door a listener setting of src/config.ts, and every listener setting a door', () => {
    const listenerRows = OPTIONS.filter((o) => o.kind.t === 'hostportOrOff').map((o) => o.key);
    for (const d of DOORS) expect(listenerRows, d.name).toContain(d.setting);
    const wired = new Set<string>(DOORS.map((d) => d.setting));
    expect(listenerRows.filter((k) => !wired.has(k) && !NOT_YET_WIRED.has(k))).toEqual([]);
    // A setting waiting for its door leaves the list once its registry line lands.
    expect([...NOT_YET_WIRED].filter((k) => wired.has(k))).toEqual([]);
  });

  it("the DNS door is not given the proxies' parts: no upstream pool, connection tracker or client-socket limit", () => {
    const dns = DOORS.find((d) => d.name === 'dns')!;
    expect(dns.needs.filter((n) => ['upstreamPool', 'tracker', 'sourceLimit'].includes(n))).toEqual([]);
  });

  it('every door is documented: its listener flag in docs/configuration.md', () => {
    const configuration = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(DOORS.filter((d) => !configuration.includes(`\`--${flagOf(d.setting)}\``)).map((d) => d.name)).toEqual([]);
  });
});

describe('a door is given the parts its registry line names, and only those', () => {
  it('gives the parts named, not the others', async () => {
    const seen: { ctx?: DoorContext } = {};
    const door = await startDoor(probe(['log', 'gate'], seen), services({} as PlaneStore), at);
    expect(Object.keys(seen.ctx!).sort()).toEqual(['gate', 'log']);
    expect(seen.ctx!.gate).toEqual({ marker: 'gate' });
    await door.close(0);
  });

  it("gives a door that names credentials the store's credential source", async () => {
    const seen: { ctx?: DoorContext } = {};
    const store = { credentials } as PlaneStore & { credentials: CredentialSource };
    await startDoor(probe(['log', 'credentials'], seen), services(store), at);
    expect(seen.ctx!.credentials).toBe(credentials);
  });

  it('gives a door that names credentials undefined when the store has none, and says so in a warning line', async () => {
    const seen: { ctx?: DoorContext } = {};
    const lines: string[] = [];
    const svc = { ...services({} as PlaneStore), log: pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) }) };
    await startDoor(probe(['credentials'], seen), svc, at);
    expect('credentials' in seen.ctx!).toBe(true);
    expect(seen.ctx!.credentials).toBeUndefined();
    expect(lines.map((l) => JSON.parse(l) as { event: string; door: string })).toMatchObject([{ event: 'door_without_credentials', door: 'probe' }]);
  });

  it('refuses a door whose start-up name is not its registry name', async () => {
    const wrong = { ...probe(['log'], {}), name: 'another' };
    await expect(startDoor(wrong, services({} as PlaneStore), at)).rejects.toThrow(/calls itself "probe"; its registry line says "another"/);
  });
});
