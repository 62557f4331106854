# An nginx web server image: variables with validation, a file upload, shell
# scripts from scripts/ and a manifest of what was built.

packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = "~> 1"
    }
  }
}

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region to build in."
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must look like \"us-east-1\"."
  }
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
  validation {
    condition     = contains(["t3.micro", "t3.small", "t3.medium"], var.instance_type)
    error_message = "Build on a t3.micro, t3.small or t3.medium."
  }
}

variable "environment" {
  type    = string
  default = "staging"
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "The environment must be staging or production."
  }
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "web" {
  region        = var.region
  instance_type = var.instance_type
  ssh_username  = "ubuntu"
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"]
    most_recent = true
  }
  ami_name        = "web-${var.environment}-${local.timestamp}"
  ami_description = "nginx on {{ .SourceAMIName }}"
  tags = {
    Name        = "web-${var.environment}"
    Environment = var.environment
    Base_AMI    = "{{ .SourceAMI }}"
  }
}

build {
  name    = "web"
  sources = ["source.amazon-ebs.web"]

  provisioner "file" {
    source      = "${path.root}/files/nginx.conf"
    destination = "/tmp/nginx.conf"
  }

  provisioner "shell" {
    scripts = [
      "${path.root}/scripts/install-nginx.sh",
      "${path.root}/scripts/cleanup.sh",
    ]
  }

  post-processor "manifest" {
    output     = "manifest.json"
    strip_path = true
    custom_data = {
      environment = var.environment
    }
  }
}
