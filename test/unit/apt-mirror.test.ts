import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// scripts/setup-system.sh adds bookworm-backports on the mirror the machine's own apt sources use; the extraction
// (scripts/apt-mirror.sh, apt_mirror_uri) runs here on sample sources files.
const SCRIPT = path.resolve(__dirname, '../../scripts/apt-mirror.sh');

describe('apt_mirror_uri (scripts/apt-mirror.sh)', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-apt-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Writes the files (name → text) and runs apt_mirror_uri bookworm on them, in that order. */
  function mirror(files: Record<string, string>, codename = 'bookworm'): string {
    const paths = Object.entries(files).map(([name, text], i) => {
      const p = path.join(dir, `${i}-${name}`);
      fs.writeFileSync(p, text);
      return p;
    });
    const r = spawnSync('bash', ['-c', `. "$0" && apt_mirror_uri "$@"`, SCRIPT, codename, ...paths], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  }

  it('deb822: the URI of the stanza for the codename, not the security or a disabled one', () => {
    const sources = [
      'Types: deb',
      'URIs: http://proxy.internal:3142/debian-security',
      'Suites: bookworm-security',
      'Components: main',
      '',
      'Types: deb',
      'URIs: http://off.example/debian',
      'Suites: bookworm',
      'Enabled: no',
      '',
      '# a comment between stanzas',
      'Types: deb-src deb',
      '# http://snapshot.debian.org/archive/debian/20250520T000000Z',
      'URIs: http://proxy.internal:3142/debian http://second.example/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
    ].join('\n');
    assert.equal(mirror({ 'debian.sources': sources }), 'http://proxy.internal:3142/debian');
  });

  it('deb822: field names in any case, values continued on the next line; deb-src only is passed over', () => {
    const sources = 'types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\nTYPES: deb\nuris:\n http://cont.example/debian\nsuites: trixie\n  bookworm\n';
    assert.equal(mirror({ 'x.sources': sources }), 'http://cont.example/debian');
  });

  it('sources.list: options in brackets, comments, other suites and cdrom: skipped', () => {
    const list = [
      '# deb http://commented.example/debian bookworm main',
      'deb cdrom:[Debian GNU/Linux 12]/ bookworm main',
      'deb-src http://src.example/debian bookworm main',
      'deb http://security.example/debian-security bookworm-security main',
      'deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] https://mirror.example.org/debian/ bookworm main contrib',
    ].join('\n');
    assert.equal(mirror({ 'sources.list': list }), 'https://mirror.example.org/debian/');
    assert.equal(mirror({ 'sources.list': 'deb [arch=amd64] http://m.example/debian bookworm main\n' }), 'http://m.example/debian');
  });

  it('files are searched in order; Basin\'s own backports entry does not count', () => {
    const ours = 'deb http://deb.debian.org/debian bookworm-backports main\n';
    const theirs = 'Types: deb\nURIs: http://local.mirror/debian\nSuites: bookworm\nComponents: main\n';
    assert.equal(mirror({ 'basin-backports.list': ours, 'debian.sources': theirs }), 'http://local.mirror/debian');
    assert.equal(mirror({ 'a.list': 'deb http://first.example/debian bookworm main\n', 'b.sources': theirs }), 'http://first.example/debian');
  });

  it('falls back to deb.debian.org only when nothing matches (no files, unreadable, another release)', () => {
    assert.equal(mirror({ 'sources.list': 'deb http://old.example/debian bullseye main\n' }), 'http://deb.debian.org/debian');
    assert.equal(mirror({ 'empty.sources': '' }), 'http://deb.debian.org/debian');
    const r = spawnSync('bash', ['-c', `. "$0" && apt_mirror_uri bookworm /nonexistent/sources.list`, SCRIPT], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'http://deb.debian.org/debian');
  });

  it('setup-system.sh takes the backports mirror from apt_mirror_uri (no hard-coded host in its source line)', () => {
    const text = fs.readFileSync(path.resolve(__dirname, '../../scripts/setup-system.sh'), 'utf8');
    assert.match(text, /apt_mirror_uri bookworm/);
    assert.doesNotMatch(text, /deb https?:\/\/[^ $]+ bookworm-backports/);
  });
});
