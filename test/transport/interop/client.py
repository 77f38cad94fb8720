"""An independent droptailer client (Python grpcio, code generated from proto/droptailer.proto at
test time): sends COUNT upstream-style Push calls (timestamp + fields only) with mutual TLS.

usage: client.py GENERATED_DIR ADDRESS CA CERT KEY SERVER_NAME COUNT
"""
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import droptailer_pb2  # noqa: E402
import droptailer_pb2_grpc  # noqa: E402


def main():
    _, _, address, ca, cert, key, server_name, count = sys.argv
    with open(ca, "rb") as f:
        ca_pem = f.read()
    with open(cert, "rb") as f:
        cert_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem)
    options = (("grpc.ssl_target_name_override", server_name),)
    with grpc.secure_channel(address, credentials, options) as channel:
        stub = droptailer_pb2_grpc.DroptailerStub(channel)
        for i in range(int(count)):
            drop = droptailer_pb2.Drop()
            drop.timestamp.seconds = 1764252130 + i
            drop.timestamp.nanos = 500000000
            drop.fields.update({
                "IN": "vrf09", "OUT": "", "SRC": "10.0.0.%d" % (i % 250 + 1), "DST": "4.3.2.1",
                "PROTO": "UDP", "SPT": str(5000 + i), "DPT": "53", "ACTION": "accept", "PYSEQ": str(i),
            })
            stub.Push(drop, timeout=10)
    print("sent %s" % count)


if __name__ == "__main__":
    main()
