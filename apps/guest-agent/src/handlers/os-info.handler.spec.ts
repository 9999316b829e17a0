import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { OsInfoSchema, type OsInfo } from '@lq/proto';
import { GetOsInfoHandler } from './os-info.handler.js';

describe('GetOsInfoHandler', () => {
  it('should answer with the same reply while the OS facts are the same object', async () => {
    let os: OsInfo = create(OsInfoSchema, { name: 'Debian GNU/Linux', version: '12' });
    const handler = new GetOsInfoHandler(() => Promise.resolve(os));
    const first = await handler.handle();
    const second = await handler.handle();
    expect(first.case).toBe('getOsInfoResponse');
    expect(second.value).toBe(first.value);

    os = create(OsInfoSchema, { name: 'Debian GNU/Linux', version: '13' });
    const third = await handler.handle();
    expect(third.value).not.toBe(first.value);
    expect(third.case === 'getOsInfoResponse' && third.value.os?.version).toBe('13');
  });
});
