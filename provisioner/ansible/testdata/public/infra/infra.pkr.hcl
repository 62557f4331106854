# Shaped like the HCL templates that run Ansible on the instance (Rust's
# infrastructure, the distributed-training AMIs): install Ansible with a
# shell provisioner, then ansible-local with a playbook directory.

variable "env" {
  type    = string
  default = "prod"
}

source "amazon-ebs" "base" {
  region        = "us-west-2"
  instance_type = "c5.xlarge"
  ssh_username  = "ubuntu"
  source_ami_filter {
    filters     = { name = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*" }
    owners      = ["099720109477"]
    most_recent = true
  }
  ami_name = "infra-${var.env}-${formatdate("YYYYMMDDhhmm", timestamp())}"
}

build {
  sources = ["source.amazon-ebs.base"]

  provisioner "shell" {
    inline = ["sudo apt-get update", "sudo apt-get install -y ansible"]
  }

  provisioner "ansible-local" {
    playbook_dir            = "./ansible"
    playbook_file           = "./ansible/playbook.yml"
    group_vars              = "./ansible/group_vars"
    role_paths              = ["./ansible/roles/base"]
    inventory_groups        = ["servers", var.env]
    extra_arguments         = ["--extra-vars", "\"env=${var.env}\"", "-v"]
    staging_directory       = "/tmp/ansible"
    clean_staging_directory = true
  }

  provisioner "ansible" {
    playbook_file          = "./ansible/playbook.yml"
    user                   = "ubuntu"
    use_proxy              = false
    groups                 = ["servers"]
    ansible_ssh_extra_args = ["-o IdentitiesOnly=yes", "-o ServerAliveInterval=30"]
    extra_arguments        = ["--diff"]
    max_retries            = 2
  }
}
