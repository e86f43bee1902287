// Certificates made in a test (openssl CLI, nothing checked in).
import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** A CA and a server certificate it signs for 127.0.0.1 / localhost, as PEM files in `dir`. */
export function makeCa(dir: string, name: string): { ca: string; cert: string; key: string } {
  const f = (x: string) => path.join(dir, `${name}-${x}`);
  const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', `/CN=${name} test CA`);
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > '${f('ext')}'`]);
  run('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}
