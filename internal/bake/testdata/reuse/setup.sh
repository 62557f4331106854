#!/bin/sh
set -e
echo "app v1" > /tmp/app-version
