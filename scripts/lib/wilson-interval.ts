/** 95% Wilson score interval of a proportion: honest for small sets and for rates near 0 or 1. */
export function wilsonInterval(part: number, whole: number): [number, number] {
  if (whole === 0) return [0, 1];
  const z = 1.959964;
  const p = part / whole;
  const centre = (p + (z * z) / (2 * whole)) / (1 + (z * z) / whole);
  const half = (z / (1 + (z * z) / whole)) * Math.sqrt((p * (1 - p)) / whole + (z * z) / (4 * whole * whole));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** "part/whole (rate%, low-high%)" with the 95% Wilson interval. */
export function rateWithInterval(part: number, whole: number): string {
  const [low, high] = wilsonInterval(part, whole);
  const p = (x: number) => (100 * x).toFixed(1);
  return `${part}/${whole} (${p(part / whole)}%, ${p(low)}-${p(high)}%)`;
}
