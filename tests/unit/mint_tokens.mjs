// mint_tokens.mjs — tokens for test_token, minted with Node's crypto (an
// implementation independent of the libcrypto calls pgfeed makes), written as
// JSON to the path given: {now, jwks, cases: [{name, token, ok, sub}]}.
import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const hsSecret = randomBytes(32);
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecJwk = { ...publicKey.export({ format: 'jwk' }), kid: 'ec1', alg: 'ES256' };
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const jwks = { keys: [{ kty: 'oct', kid: 'hs1', alg: 'HS256', k: b64url(hsSecret) }, ecJwk] };

function hs256(header, payload, secret = hsSecret) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
function es256(header, payload, key = privateKey) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  // JWS wants r||s (IEEE P1363), not DER.
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

const claims = { sub: 'alice', exp: now + 600, iat: now, channels: ['user:alice'] };
const hs = { alg: 'HS256', kid: 'hs1', typ: 'JWT' };
const es = { alg: 'ES256', kid: 'ec1', typ: 'JWT' };
const cases = [
  { name: 'hs256', token: hs256(hs, claims), ok: true, sub: 'alice' },
  { name: 'es256', token: es256(es, claims), ok: true, sub: 'alice' },
  { name: 'es256 by another key', token: es256(es, claims, other), ok: false },
  { name: 'hs256 wrong secret', token: hs256(hs, claims, randomBytes(32)), ok: false },
  { name: 'hs256 expired', token: hs256(hs, { ...claims, exp: now - 120 }), ok: false },
  { name: 'es256 nbf ahead', token: es256(es, { ...claims, nbf: now + 300 }), ok: false },
  // The EC key's public x used as an HMAC secret: the classic algorithm confusion.
  { name: 'hs256 under the ec kid', token: hs256({ ...hs, kid: 'ec1' }, claims, Buffer.from(ecJwk.x)), ok: false },
  { name: 'es256 header on the hs kid', token: es256({ ...es, kid: 'hs1' }, claims), ok: false },
  { name: 'unicode sub', token: hs256(hs, { ...claims, sub: 'zoë' }), ok: true, sub: 'zoë' },
];
writeFileSync(process.argv[2], JSON.stringify({ now, jwks, cases }));
