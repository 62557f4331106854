count = "many"
