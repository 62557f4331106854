#!/bin/sh
# Installs nginx and enables it at boot.
set -eu
export DEBIAN_FRONTEND=noninteractive
sudo apt-get update
sudo apt-get install -y nginx
sudo install -m 0644 /tmp/nginx.conf /etc/nginx/conf.d/site.conf
sudo systemctl enable nginx
