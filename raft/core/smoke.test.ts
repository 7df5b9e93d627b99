test('swc runs', () => { const x: number = 1; expect(x).toBe(1); });
