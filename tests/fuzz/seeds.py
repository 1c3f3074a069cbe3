#!/usr/bin/env python3
"""Writes the checked-in seed corpora (corpus/<harness>/) the fuzzers start
from: well-formed inputs of each shape, so a short CI run explores around
real requests instead of rediscovering the record header. Run from anywhere:
    python3 tests/fuzz/seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def rec(t, content=b'', rid=1, pad=0):
    return struct.pack('>BBHHBB', 1, t, rid, len(content), pad, 0) + content + b'\0' * pad


def length(n):
    return bytes([n]) if n < 128 else struct.pack('>I', n | 0x80000000)


def pairs(d):
    out = b''
    for k, v in d.items():
        k, v = k.encode(), v.encode()
        out += length(len(k)) + length(len(v)) + k + v
    return out


def begin(rid=1, keep=False, role=1):
    return rec(1, struct.pack('>HB5x', role, 1 if keep else 0), rid)


def request(rid, params, keep=False, body=b''):
    s = begin(rid, keep) + rec(4, pairs(params), rid) + rec(4, b'', rid)
    if body:
        s += rec(5, body, rid)
    return s + rec(5, b'', rid)


GET = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/orders', 'QUERY_STRING': 'since=41&wait=25',
       'HTTP_ACCEPT': 'text/event-stream', 'HTTP_IF_NONE_MATCH': '"41"'}

# fuzz_fcgi_record: the first byte picks the piece size the stream is fed in.
RECORD = {
    'get': b'\x00' + request(1, GET),
    'get_split': b'\x01' + request(1, GET),
    'keep_two': b'\x05' + request(1, GET, True) + request(2, GET, True),
    'post': b'\x03' + request(7, {'REQUEST_METHOD': 'POST', 'PATH_INFO': '/orders',
                                  'CONTENT_TYPE': 'application/json', 'CONTENT_LENGTH': '11'},
                              body=b'{"type":"x"}'),
    'get_values': b'\x00' + rec(9, pairs({'FCGI_MAX_CONNS': '', 'FCGI_MAX_REQS': '',
                                          'FCGI_MPXS_CONNS': ''}), 0) + rec(42, b'abc', 0),
    'mpx_abort': b'\x02' + begin(1, True) + rec(4, pairs(GET), 1) + begin(2) + rec(2, b'', 1)
    + request(3, GET),
    'padded_long': b'\x09' + begin(1) + rec(4, pairs({'HTTP_X': 'v' * 300, 'N' * 200: 'short'}), 1, 7)
    + rec(4, b'', 1, 255) + rec(5, b'', 1),
    'roles': b'\x00' + begin(1, False, 2) + begin(1, True, 3) + rec(8, b'd', 1),
    # What the first fuzz run found: a request whose params stream is empty.
    'no_params': b'\x00' + begin(1) + rec(4, b'') + rec(5, b''),
}


def plist(d):
    return b'\0'.join(f'{k}={v}'.encode() for k, v in d.items())


# fuzz_feed_request: NUL-separated NAME=value params.
FEED_REQUEST = {
    'poll': plist({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/orders', 'QUERY_STRING': 'since=41&limit=10'}),
    'multi': plist({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/',
                    'QUERY_STRING': 'channel=orders&channel=user:42&since=orders=41,user:42=7&wait=25'}),
    'sse': plist({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/orders', 'HTTP_ACCEPT': 'text/event-stream',
                  'HTTP_LAST_EVENT_ID': '17'}),
    'inm': plist({'REQUEST_METHOD': 'HEAD', 'PATH_INFO': '/orders', 'HTTP_IF_NONE_MATCH': 'W/"3", "4"'}),
    'post': plist({'REQUEST_METHOD': 'POST', 'PATH_INFO': '/orders', 'CONTENT_TYPE': 'application/json'}),
    'routes': plist({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/_metrics'}),
    'bad': plist({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/%C3%A9',
                  'QUERY_STRING': 'since=%G1&limit=0&limit=1&wait=-1'}),
}

QUERY_STRING = {'plain': b'since=41&limit=10', 'repeat': b'channel=a&channel=b&&=&x',
                'escapes': b'a=%41%42+c&b=%zz&c=%', 'nul': b'a=%00', 'plus': b'x=1+2%2B3&y'}

CURSOR = {'bare': b'41', 'pairs': b'orders=41,user:42=7', 'now': b'now', 'inm': b'W/"41"',
          'list': b'"1", "2"', 'star': b'*', 'big': b'9223372036854775807',
          'dup': b'orders=1,orders=2', 'empty': b',,'}

for harness, seeds in [('fuzz_fcgi_record', RECORD), ('fuzz_feed_request', FEED_REQUEST),
                       ('fuzz_query_string', QUERY_STRING), ('fuzz_cursor', CURSOR)]:
    d = os.path.join(HERE, 'corpus', harness)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
