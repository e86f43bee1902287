// A small RFC 4180 CSV reader for reference datasets: quoted fields, doubled quotes, CRLF or LF,
// a header row. Good enough for exported training/validation sets; no dependency.

export class CsvError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`CSV line ${line}: ${message}`);
    this.name = 'CsvError';
  }
}

/**
 * Parses CSV text into a header and rows of strings (every row as long as the header).
 *
 * @example
 * parseCsv('a,b\n1,"x, y"\n') // { header: ['a', 'b'], rows: [['1', 'x, y']] }
 */
export function parseCsv(text: string): { header: string[]; rows: string[][] } {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  let line = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // BOM
  const endRecord = () => {
    record.push(field);
    field = '';
    // A blank line is not a record.
    if (!(record.length === 1 && record[0] === '')) records.push(record);
    record = [];
  };
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
    } else if (ch === '"') {
      if (field !== '') throw new CsvError('a quote inside an unquoted field', line);
      quoted = true;
    } else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
    } else field += ch;
  }
  if (quoted) throw new CsvError('unterminated quoted field', line);
  if (field !== '' || record.length) endRecord();
  if (!records.length) throw new CsvError('no header row', 1);
  const [header, ...rows] = records;
  const names = header.map((h) => h.trim());
  if (names.some((n) => n === '')) throw new CsvError('empty column name in the header', 1);
  if (new Set(names).size !== names.length) throw new CsvError('duplicate column names in the header', 1);
  rows.forEach((r, k) => {
    if (r.length !== names.length) throw new CsvError(`expected ${names.length} fields, got ${r.length}`, k + 2);
  });
  return { header: names, rows };
}
