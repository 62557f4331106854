#!/bin/sh
set -eu
echo "$GREETING, $TARGET" > /etc/greeting
mkdir -p /opt/app
cp -r /tmp/up/. /opt/app/
echo "build=$PACKER_BUILD_NAME" >> /etc/greeting
