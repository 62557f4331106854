packer {
  required_plugins {
    amazon = {
      version = ">= 1.2.8"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

variable "aws_access_key" {
  type    = string
  default = ""
}

variable "aws_secret_key" {
  type      = string
  default   = ""
  sensitive = true
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "hello" {
  access_key    = var.aws_access_key
  secret_key    = var.aws_secret_key
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "hello_ami ${local.timestamp}"
}

build {
  sources = ["source.amazon-ebs.hello"]

  provisioner "shell" {
    inline = [
      "sleep 30",
      "sudo apt-get update",
      "sudo apt-get install -y redis-server",
    ]
  }
}
