import { describe, expect, it } from '@jest/globals';
import { OUTPUT_REDACTED, OutputRedactor, parseOutputPatterns } from './output-redactor.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const redact = (s: string, r = new OutputRedactor({ defaults: true })) => {
  const out = r.redact(Buffer.from(s));
  return { text: text(out.data), count: out.count };
};

describe('OutputRedactor', () => {
  it('should redact the default secrets and keep what is around them', () => {
    const key = [
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
      '-----END OPENSSH PRIVATE KEY-----',
    ].join('\n');
    const cases: Array<[string, string]> = [
      [`before\n${key}\nafter`, `before\n${OUTPUT_REDACTED}\nafter`],
      ['-----BEGIN RSA PRIVATE KEY-----\nMIIE (cut)', OUTPUT_REDACTED],
      ['db password=hunter2 ok', `db password=${OUTPUT_REDACTED} ok`],
      ['passwd: s3cret\n', `passwd: ${OUTPUT_REDACTED}\n`],
      ['{"api_key": "abc123"}', `{"api_key": "${OUTPUT_REDACTED}"}`],
      [
        'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        `aws_secret_access_key = ${OUTPUT_REDACTED}`,
      ],
      ['Authorization: Bearer abc.def-ghi_jkl', `Authorization: Bearer ${OUTPUT_REDACTED}`],
      ['key AKIAIOSFODNN7EXAMPLE here', `key ${OUTPUT_REDACTED} here`],
      ['t=ghp_abcdefghijklmnopqrstuvwxyz0123456789', `t=${OUTPUT_REDACTED}`],
      ['lq_testadmn_TestAdminKey0123456789abcdefghijklmnop', OUTPUT_REDACTED],
    ];
    for (const [input, expected] of cases) {
      expect(redact(input).text).toBe(expected);
      expect(redact(input).count).toBeGreaterThan(0);
    }
  });

  it('should leave output without secrets as the same bytes, binary included', () => {
    const r = new OutputRedactor({ defaults: true });
    const bytes = Buffer.from([0, 255, 0xc3, 0xa9, 10, 0x80]);
    expect(r.redact(bytes)).toEqual({ data: bytes, count: 0 });
    const mixed = Buffer.concat([Buffer.from('é password=x '), bytes]);
    const out = r.redact(mixed);
    expect(Buffer.from(out.data)).toEqual(
      Buffer.concat([Buffer.from(`é password=${OUTPUT_REDACTED} `), bytes]),
    );
  });

  it('should apply configured patterns, and none when defaults are off and none are given', () => {
    const r = new OutputRedactor({
      defaults: false,
      extra: parseOutputPatterns('["(?<=pin=)\\\\d+"]'),
    });
    expect(redact('pin=1234 password=x', r)).toEqual({
      text: `pin=${OUTPUT_REDACTED} password=x`,
      count: 1,
    });
    expect(new OutputRedactor({ defaults: false }).enabled).toBe(false);
  });
});
