hi ${name}
