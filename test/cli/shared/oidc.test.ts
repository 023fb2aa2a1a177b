// Unit tests for the OIDC payload rules (cli/shared/oidc.ts: oidc-issuer prints them, doctor checks them).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { externalPayloads, issuerWarnings, tokenWarnings } from '../../../cli/shared/oidc.ts'

describe('OIDC payload rules', () => {
  const key = { kid: 'k1', kty: 'RSA', n: 'nnn', e: 'AQAB', alg: 'RS256', use: 'sig' }
  const documents = {
    discovery: {
      issuer: 'https://oidc.example.test',
      jwks_uri: 'https://oidc.example.test/openid/v1/jwks',
    },
    keys: [key],
  }

  test('one external payload per RSA signing key, alg and use defaulted', () => {
    const { payloads, warnings } = externalPayloads({
      ...documents,
      keys: [
        { kid: 'k2', kty: 'RSA', n: 'm', e: 'AQAB' },
        { kid: 'enc', kty: 'RSA', n: 'm', e: 'AQAB', use: 'enc' },
      ],
    })
    assert.deepEqual(payloads, [
      {
        source: 'external',
        uri: documents.discovery.jwks_uri,
        kid: 'k2',
        kty: 'RSA',
        n: 'm',
        e: 'AQAB',
        alg: 'RS256',
        use: 'sig',
      },
    ])
    assert.equal(warnings.length, 1)
  })

  test('a public issuer that serves its own keys and matches --expected-issuer has no warnings', () => {
    assert.deepEqual(issuerWarnings(documents, 'https://oidc.example.test'), [])
    assert.equal(issuerWarnings(documents, 'https://other.example.test').length, 1)
  })

  test('tokenWarnings flags a foreign iss and an unknown kid', () => {
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const token = `${part({ alg: 'RS256', kid: 'k9' })}.${part({ iss: 'https://elsewhere' })}.sig`
    const warnings = tokenWarnings(documents, token)
    assert.equal(warnings.length, 2)
    assert.match(warnings[1] ?? '', /"k9" is not in the JWKS/)
  })
})
