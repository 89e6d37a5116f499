import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.ts';
import { configTable } from '../../src/lib/settings.ts';

const emptyDir = () => mkdtempSync(join(tmpdir(), 'yunji-config-'));

describe('loadConfig', () => {
  it('gives the documented defaults with nothing set', () => {
    const cwd = emptyDir();
    const c = loadConfig({}, cwd);
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(7890);
    expect(c.dataDir).toBe(join(cwd, 'data'));
    expect(c.databaseUrl).toBe('');
    expect(c.adminEmail).toBe('admin@example.com');
    expect(c.bodyLimit).toBe(1048576);
    expect(c.native).toBe('auto');
  });

  it('reads yunji.config.json and lets the environment override it', () => {
    const cwd = emptyDir();
    writeFileSync(join(cwd, 'yunji.config.json'), JSON.stringify({ port: 8000, host: '0.0.0.0', trustProxy: true }));
    const c = loadConfig({ YUNJI_PORT: '9000' }, cwd);
    expect(c.port).toBe(9000);
    expect(c.host).toBe('0.0.0.0');
    expect(c.trustProxy).toBe(true);
  });

  it('names the setting when a value is wrong', () => {
    const cwd = emptyDir();
    expect(() => loadConfig({ YUNJI_PORT: 'abc' }, cwd)).toThrow(/YUNJI_PORT: must be an integer \(got 'abc'\)/);
    expect(() => loadConfig({ YUNJI_PORT: '70000' }, cwd)).toThrow(/YUNJI_PORT \(port\)/);
    expect(() => loadConfig({ YUNJI_TRUST_PROXY: 'maybe' }, cwd)).toThrow(/YUNJI_TRUST_PROXY: must be true or false/);
    expect(() => loadConfig({ YUNJI_LOG_LEVEL: 'loud' }, cwd)).toThrow(/YUNJI_LOG_LEVEL \(logLevel\)/);
    expect(() => loadConfig({ YUNJI_BODY_LIMIT: '10' }, cwd)).toThrow(ConfigError);
    expect(() => loadConfig({ YUNJI_NATIVE: 'on' }, cwd)).toThrow(/YUNJI_NATIVE \(native\)/);
  });

  it('refuses unknown keys and non-JSON in the file, and a missing explicit file', () => {
    const cwd = emptyDir();
    writeFileSync(join(cwd, 'yunji.config.json'), JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({}, cwd)).toThrow(/'prot' \(unknown setting\)/);
    writeFileSync(join(cwd, 'yunji.config.json'), '{ not json');
    expect(() => loadConfig({}, cwd)).toThrow(/not valid JSON/);
    writeFileSync(join(cwd, 'yunji.config.json'), '[1]');
    expect(() => loadConfig({}, cwd)).toThrow(/must hold a JSON object/);
    expect(() => loadConfig({ YUNJI_CONFIG: 'missing.json' }, emptyDir())).toThrow(/YUNJI_CONFIG: cannot read/);
  });

  it('is documented: the README configuration table lists every setting', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    for (const row of configTable()) {
      const shown = row.default === '' ? '(empty)' : `\`${String(row.default)}\``;
      expect(readme, `README's row for ${row.env} differs from src/lib/settings.ts`).toContain(
        `| \`${row.env}\` | \`${row.key}\` | ${shown} | ${row.description} |`,
      );
    }
  });
});
