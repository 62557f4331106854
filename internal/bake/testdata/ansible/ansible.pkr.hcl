# Ansible from the machine running amibake (ansible) and on the instance
# (ansible-local), each installing a package from the mirror, writing a
# templated file and using a role from a roles path.

variable "greeting" {
  type    = string
  default = "hello from ansible"
}

variable "token" {
  type      = string
  default   = "tok-0123456789-secret"
  sensitive = true
}

source "amazon-ebs" "debian" {
  region        = "us-east-1"
  instance_type = "t3.micro"
  ssh_username  = "admin"
  source_ami_filter {
    filters     = { name = "debian-12-amd64-*" }
    owners      = ["136693071363"]
    most_recent = true
  }
  ami_name = "ansible-${regex_replace(timestamp(), "[- TZ:]", "")}"
}

build {
  sources = ["source.amazon-ebs.debian"]

  provisioner "shell" {
    inline = ["cloud-init status --wait", "sudo apt-get update"]
  }

  provisioner "ansible" {
    playbook_file    = "./playbook.yml"
    user             = "admin"
    groups           = ["web"]
    empty_groups     = ["db"]
    host_alias       = "box"
    extra_arguments  = ["--extra-vars", "greeting='${var.greeting}' api_token=${var.token}"]
    ansible_env_vars = ["ANSIBLE_NOCOLOR=True", "ANSIBLE_ROLES_PATH=./shared-roles"]
  }

  provisioner "shell" {
    inline = ["sudo apt-get install -y ansible"]
  }

  provisioner "ansible-local" {
    playbook_file           = "./local.yml"
    role_paths              = ["./local-roles/greeter"]
    inventory_groups        = ["local"]
    extra_arguments         = ["--extra-vars", "\"who=ansible-local\""]
    clean_staging_directory = true
  }
}
