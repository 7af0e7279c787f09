#!/usr/bin/env python3
"""A reference reader in Python (http.client), beside getEveryManifestOnce in bench/ceiling.ts: GETs every tag's
manifest once (the Accept header regmigrate sends), over CONNECTIONS keep-alive connections (one thread each).
No parsing, no checks beyond the status.

usage: get-python.py HOST CONNECTIONS < names    (one "repository tag" a line)
prints one JSON line: seconds, requests
"""
import http.client
import json
import sys
import threading
import time

host = sys.argv[1]
connections = int(sys.argv[2]) if len(sys.argv) > 2 else 16
names = [line.split() for line in sys.stdin if line.strip()]
accept = ', '.join([
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v2+json',
])
lock = threading.Lock()
state = {'next': 0, 'error': None}


def take():
    with lock:
        if state['next'] >= len(names) or state['error']:
            return None
        state['next'] += 1
        return names[state['next'] - 1]


def worker():
    conn = http.client.HTTPConnection(host)
    while True:
        name = take()
        if name is None:
            return
        conn.request('GET', '/v2/%s/manifests/%s' % (name[0], name[1]), headers={'Accept': accept})
        res = conn.getresponse()
        res.read()
        if res.status != 200:
            with lock:
                state['error'] = 'GET %s:%s: %d' % (name[0], name[1], res.status)
            return


started = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(connections)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if state['error']:
    sys.exit(state['error'])
print(json.dumps({'seconds': time.monotonic() - started, 'requests': len(names)}))
