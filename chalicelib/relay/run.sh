#!/bin/sh
# The relay function's handler. AWS Lambda Web Adapter (the layer, started by
# AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this script, waits for the server to answer on
# AWS_LWA_PORT, and streams each invocation's response from it (AWS_LWA_INVOKE_MODE=response_stream).
# The dependencies are at the root of the deployment package, next to chalicelib/.
# --no-proxy-headers: the caller's IP is API Gateway's sourceIp (relay.app.client_ip), never an
# X-Forwarded-For header uvicorn would otherwise trust from Web Adapter on 127.0.0.1.
export PYTHONPATH="${LAMBDA_TASK_ROOT:-.}${PYTHONPATH:+:$PYTHONPATH}"
exec python -m uvicorn chalicelib.relay.app:app \
  --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log --timeout-keep-alive 60 \
  --no-proxy-headers
