variable "1region" {
  default = "x"
}
