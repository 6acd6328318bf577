from imagesense.cli import main

main()
