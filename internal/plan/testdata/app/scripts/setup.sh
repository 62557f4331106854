#!/bin/sh
echo "$GREETING" > /etc/motd
