#!/usr/bin/env python3
"""A reference uploader in Python (http.client), beside bench/upload-node.ts: every blob file of a registry storage
once, largest first, over CONNECTIONS keep-alive connections (one thread each), each as POST + one monolithic PUT
with Content-Length. Over plain HTTP the body goes with socket.sendfile (the kernel copies file to socket); over
HTTPS through one reused 256 KiB buffer. No manifests, no checks, no retries.

usage: upload-python.py ROOT URL CONNECTIONS [CA_FILE]    prints one JSON line: seconds, blobs, bytes, requests
"""
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse

root, base = sys.argv[1], sys.argv[2]
connections = int(sys.argv[3]) if len(sys.argv) > 3 else 8
ca_file = sys.argv[4] if len(sys.argv) > 4 else None
origin = urllib.parse.urlsplit(base)
tls = origin.scheme == 'https'
context = ssl.create_default_context(cafile=ca_file) if tls else None

blob_dir = os.path.join(root, 'docker/registry/v2/blobs/sha256')
blobs = []
for fan in os.listdir(blob_dir):
    for hexdigest in os.listdir(os.path.join(blob_dir, fan)):
        path = os.path.join(blob_dir, fan, hexdigest, 'data')
        blobs.append((os.path.getsize(path), 'sha256:' + hexdigest, path))
blobs.sort(reverse=True)

lock = threading.Lock()
state = {'next': 0, 'requests': 0, 'error': None}


def take():
    with lock:
        if state['next'] >= len(blobs) or state['error']:
            return None
        blob = blobs[state['next']]
        state['next'] += 1
        state['requests'] += 2
        return blob


def worker():
    if tls:
        conn = http.client.HTTPSConnection(origin.hostname, origin.port, context=context)
    else:
        conn = http.client.HTTPConnection(origin.hostname, origin.port)
    buffer = bytearray(256 * 1024)
    view = memoryview(buffer)
    try:
        while True:
            blob = take()
            if blob is None:
                return
            size, digest, path = blob
            conn.request('POST', '/v2/ceiling/blobs/uploads/', headers={'Content-Length': '0'})
            res = conn.getresponse()
            res.read()
            if res.status != 202:
                raise RuntimeError(f'POST for {digest}: {res.status}')
            location = urllib.parse.urlsplit(res.getheader('Location'))
            query = (location.query + '&' if location.query else '') + 'digest=' + digest
            conn.putrequest('PUT', location.path + '?' + query, skip_accept_encoding=True)
            conn.putheader('Content-Type', 'application/octet-stream')
            conn.putheader('Content-Length', str(size))
            conn.endheaders()
            with open(path, 'rb') as f:
                if tls:
                    while True:
                        n = f.readinto(buffer)
                        if not n:
                            break
                        conn.sock.sendall(view[:n])
                else:
                    conn.sock.sendfile(f)
            res = conn.getresponse()
            res.read()
            if res.status != 201:
                raise RuntimeError(f'PUT of {digest}: {res.status}')
    except Exception as e:  # noqa: BLE001 - reported once, the run fails
        state['error'] = e
    finally:
        conn.close()


started = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.monotonic() - started
if state['error']:
    print(f'upload-python: {state["error"]}', file=sys.stderr)
    sys.exit(1)
print(json.dumps({'seconds': seconds, 'blobs': len(blobs), 'bytes': sum(b[0] for b in blobs), 'requests': state['requests']}))
