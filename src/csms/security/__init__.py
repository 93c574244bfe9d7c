"""Transport security for stations: TLS contexts and a development CA.

``tls`` builds the server contexts of OCPP security profiles 2 and 3;
``certs`` makes a CA, a server certificate and station client certificates so that
a developer can try profile 3 without a real PKI.
"""
