"""An independent droptailer server (Python grpcio, code generated from proto/droptailer.proto at
test time) that implements only Push, like the upstream Go server: PushBatch answers UNIMPLEMENTED
(grpcio does that for a method the servicer does not override). Requires client certificates.
Prints one JSON line per received Drop on stdout; "listening on PORT" on stderr.

usage: server.py GENERATED_DIR CA CERT KEY
"""
import json
import sys
import threading
from concurrent import futures

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import droptailer_pb2  # noqa: E402
import droptailer_pb2_grpc  # noqa: E402

lock = threading.Lock()


class PushOnly(droptailer_pb2_grpc.DroptailerServicer):
    def Push(self, request, context):
        line = json.dumps({
            "seconds": request.timestamp.seconds,
            "fields": dict(request.fields),
            "event_id": request.event_id,
            "host": request.host,
        }, sort_keys=True)
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return droptailer_pb2.Void()


def main():
    _, _, ca, cert, key = sys.argv
    with open(ca, "rb") as f:
        ca_pem = f.read()
    with open(cert, "rb") as f:
        cert_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    droptailer_pb2_grpc.add_DroptailerServicer_to_server(PushOnly(), server)
    credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    sys.stderr.write("listening on 127.0.0.1:%d\n" % port)
    sys.stderr.flush()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
