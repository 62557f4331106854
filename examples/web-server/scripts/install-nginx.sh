#!/bin/sh
# Installs nginx and enables it at boot.
set -eu
export DEBIAN_FRONTEND=noninteractive
sudo apt-get update
sudo apt-get install -y nginx
# Our site is the default server: drop the package's own default site.
sudo rm -f /etc/nginx/sites-enabled/default
sudo install -m 0644 /tmp/nginx.conf /etc/nginx/conf.d/site.conf
sudo nginx -t
sudo systemctl enable nginx
