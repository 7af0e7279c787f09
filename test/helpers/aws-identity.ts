/**
 * Stand-ins on a loopback port for the AWS services that hand out credentials, speaking their documented wire
 * formats, so the SDK's credential chain can be run for real without leaving the machine:
 * - STS AssumeRoleWithWebIdentity (query API, form-encoded POST, XML answer), reached via AWS_ENDPOINT_URL_STS;
 * - the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI, JSON answer);
 * - the instance metadata service, IMDSv2 (PUT for a session token, then GETs carrying it), reached via
 *   AWS_EC2_METADATA_SERVICE_ENDPOINT.
 */
import http from 'node:http';
import { atEnd } from './teardown.js';

export interface IssuedKeys {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
}

export interface AwsIdentityServer {
  readonly url: string;
  /** Every request: method, path and the form fields or headers that matter. */
  readonly log: Array<{ method: string; path: string; form: Record<string, string>; headers: http.IncomingHttpHeaders }>;
  stop(): Promise<void>;
}

const IMDS_TOKEN = 'imds-session-token-0123';

/** Hands out `keys` (temporary credentials: the tests get them from the S3 server's own STS, which then checks them). */
export async function startAwsIdentityServer(keys: IssuedKeys, role = 'regmigrate-reader'): Promise<AwsIdentityServer> {
  const log: AwsIdentityServer['log'] = [];
  const expiration = new Date(Date.now() + 3600_000).toISOString();
  const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://identity');
      const form = Object.fromEntries(new URLSearchParams(req.method === 'POST' ? body : url.search));
      log.push({ method: req.method ?? '', path: url.pathname, form, headers: req.headers });
      const send = (status: number, type: string, text: string): void => {
        res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(text)) });
        res.end(text);
      };
      // STS: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
      if (req.method === 'POST' && form.Action === 'AssumeRoleWithWebIdentity') {
        return send(
          200,
          'text/xml',
          `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>` +
            `<SubjectFromWebIdentityToken>system:serviceaccount:registry:regmigrate</SubjectFromWebIdentityToken>` +
            `<AssumedRoleUser><Arn>${form.RoleArn}/${form.RoleSessionName}</Arn><AssumedRoleId>AROA:${form.RoleSessionName}</AssumedRoleId></AssumedRoleUser>` +
            `<Credentials><AccessKeyId>${keys.accessKeyId}</AccessKeyId><SecretAccessKey>${keys.secretAccessKey}</SecretAccessKey><SessionToken>${escapeXml(keys.sessionToken)}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
            `</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>fake-sts</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
        );
      }
      const json = JSON.stringify({
        Code: 'Success',
        Type: 'AWS-HMAC',
        AccessKeyId: keys.accessKeyId,
        SecretAccessKey: keys.secretAccessKey,
        Token: keys.sessionToken,
        Expiration: expiration,
        LastUpdated: new Date().toISOString(),
      });
      if (url.pathname === '/container-credentials') return send(200, 'application/json', json);
      // IMDSv2: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html
      if (req.method === 'PUT' && url.pathname === '/latest/api/token') return send(200, 'text/plain', IMDS_TOKEN);
      if (url.pathname.startsWith('/latest/meta-data/iam/security-credentials')) {
        if (req.headers['x-aws-ec2-metadata-token'] !== IMDS_TOKEN) return send(401, 'text/plain', 'no token');
        const rest = url.pathname.replace(/^\/latest\/meta-data\/iam\/security-credentials(-extended)?\/?/, '');
        return rest === '' ? send(200, 'text/plain', role) : rest === role ? send(200, 'application/json', json) : send(404, 'text/plain', 'no such role');
      }
      send(404, 'text/plain', 'not found');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const stop = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  atEnd(stop);
  return { url: `http://127.0.0.1:${port}`, log, stop };
}
