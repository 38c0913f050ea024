from hepdl.cli import app

app(prog_name="hepdl")
