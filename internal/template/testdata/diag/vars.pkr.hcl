variable "region" {
  type    = string
  default = "us-east-1"
}

variable "count" {
  type    = number
  default = 1
}
