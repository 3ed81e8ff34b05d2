// lib/util/hash and lib/util/random: the plugins' own SHA-256/512 give
// node:crypto's digests (names derived from them must not change), random
// bytes come in the asked number.
import * as crypto from 'crypto';
import { sha256Hex, sha512Hex } from '../../lib/util/hash';
import { randomBytes } from '../../lib/util/random';

const texts = ['', 'a', 'abc', 'network pfbr', 'x'.repeat(55), 'x'.repeat(56), 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(111), 'x'.repeat(112),
  'x'.repeat(127), 'x'.repeat(128), 'x'.repeat(1000), 'ünïcödé ✓ 🚀', `net\0ctr\0eth0`];

it.each(texts.map((t) => [t.length > 40 ? `${t.slice(0, 20)}… (${t.length})` : t, t]))('SHA-256 and SHA-512 of %j equal node:crypto\'s', (_label, text) => {
  expect(sha256Hex(text)).toBe(crypto.createHash('sha256').update(text).digest('hex'));
  expect(sha512Hex(text)).toBe(crypto.createHash('sha512').update(text).digest('hex'));
});

it('equals node:crypto on 300 random buffers of 0-300 bytes', () => {
  for (let i = 0; i < 300; i++) {
    const buf = crypto.randomBytes(i);
    expect(sha256Hex(buf)).toBe(crypto.createHash('sha256').update(buf).digest('hex'));
    expect(sha512Hex(buf)).toBe(crypto.createHash('sha512').update(buf).digest('hex'));
  }
});

it('random bytes: as many as asked, not all the same', () => {
  expect(randomBytes(0)).toHaveLength(0);
  const a = randomBytes(16);
  expect(a).toHaveLength(16);
  expect(a.equals(randomBytes(16))).toBe(false);
});
