/** A figure as the tables print it: thousands separated above 100, 1 decimal above 10, else 2. */
export const formatFigure = (v: number): string =>
  v >= 100 ? Math.round(v).toLocaleString('en-US') : v >= 10 ? v.toFixed(1) : v.toFixed(2);
