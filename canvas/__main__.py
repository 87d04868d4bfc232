from canvas.cli import main

main()
