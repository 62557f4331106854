#!/bin/sh
# Removes what should not be baked into the image.
set -eu
sudo apt-get clean
sudo rm -rf /tmp/* /var/lib/apt/lists/*
sudo truncate -s 0 /etc/machine-id
