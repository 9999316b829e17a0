import { describe, expect, it } from '@jest/globals';
import { parseManifest } from './manifest.js';

const entry = (id: string) => ({ id, listen: `/tmp/${id}.sock`, config: `/tmp/${id}.json` });

describe('parseManifest', () => {
  it('should return the agents in order when every entry is complete', () => {
    expect(parseManifest(JSON.stringify({ agents: [entry('a'), entry('b')] }))).toEqual([
      entry('a'),
      entry('b'),
    ]);
  });

  it('should name the problem when the manifest or an entry is wrong', () => {
    expect(() => parseManifest('{')).toThrow(SyntaxError);
    expect(() => parseManifest('null')).toThrow(/non-empty "agents" array/);
    expect(() => parseManifest('{"agents": []}')).toThrow(/non-empty "agents" array/);
    expect(() => parseManifest(JSON.stringify({ agents: [{ id: 'a', listen: '/x' }] }))).toThrow(
      'agents[0].config must be a non-empty string',
    );
    expect(() => parseManifest(JSON.stringify({ agents: [entry('a'), entry('a')] }))).toThrow(
      'agents[1].id "a" appears twice',
    );
    const many = Array.from({ length: 2001 }, (_, i) => entry(`v${i}`));
    expect(() => parseManifest(JSON.stringify({ agents: many }))).toThrow(/at most 2000/);
  });
});
