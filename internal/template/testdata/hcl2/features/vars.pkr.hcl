variable "region" {
  type    = string
  default = "us-east-1"
}

variable "tags" {
  type    = map(string)
  default = { team = "infra" }
}

variable "from_env_default" {
  type    = string
  default = env("AMIBAKE_TEST_HOME")
}

variable "password" {
  type      = string
  default   = "hunter2"
  sensitive = true
}

variable "count" {
  type    = number
  default = 1
}

variables {
  legacy_style = "old"
}
