"""display, update by id, and the MIME helpers."""

from commrouter import program

program.display(program.html("<b>first</b>"), {"isolated": True}, display_id="d1")
program.display({**program.markdown("*md*"), **program.text("md")})
program.display(program.png(b"\x89PNG\r\n"), display_id="img")
program.update_display("d1", {**program.svg("<svg/>"), **program.text("second")})
program.sync()
