#!/bin/sh
set -eu
echo "$GREETING, $TARGET" | sudo tee /etc/greeting >/dev/null
sudo mkdir -p /opt/app
sudo cp -r /tmp/up/. /opt/app/
echo "build=$PACKER_BUILD_NAME" | sudo tee -a /etc/greeting >/dev/null
