"""The exact text printed on the rendered test pages (see ``samples``)."""

DOCUMENT = [
    "INVOICE No. 2026-1125",
    "Date: 25 November 2026",
    "Bill to: Jane Doe, 42 Main Street",
    "Consulting services 12 hours",
    "Rate per hour: 95.00 EUR",
    "Total due: 1,140.00 EUR",
]
RECEIPT = [
    "CORNER CAFE",
    "Espresso\t2.80",
    "Croissant\t3.20",
    "Orange juice\t4.50",
    "Subtotal\t10.50",
    "VAT 10%\t1.05",
    "TOTAL\t11.55",
    "Thank you!",
]
CHINESE = [
    "发票号码：二零二六一一二五",
    "购买方：北京示例科技有限公司",
    "项目：技术服务费",
    "金额：人民币壹仟贰佰元整",
    "开票日期：2026年11月25日",
]
SIGN = ["NO PARKING", "TOW AWAY ZONE"]
# Each line has a gap in it (a form's label and value): the detector boxes the two parts apart, and
# on a skewed page the right part sits a line's height lower than the left.
PARAGRAPH = [
    "Committee review\tquarterly figures",
    "Revenue growth\televen percent",
    "Operating costs\talmost flat",
    "New warehouse\tLeeds, approved",
    "Next report\tMarch 2027",
    "Prepared by\tthe finance team",
]
LEFT_COLUMN = ["Solar output rose", "sharply in spring,", "helped by clear", "skies and new", "panels on the roof."]
RIGHT_COLUMN = [
    "Wind farms had a",
    "quieter season, but",
    "storage batteries",
    "kept the grid stable",
    "through the nights.",
]
CHINESE_FORM = [
    "发票号码\t二零二六一一二五",
    "购买方\t北京示例科技",
    "项目\t技术服务费",
    "金额\t壹仟贰佰元整",
    "日期\t十一月二十五日",
]
# A table whose long cells wrap onto a second line inside their row; read row by row, a wrapped cell
# is read whole before the next cell.
TABLE_WRAPPED = [
    [["Part"], ["Description"], ["Qty"], ["Price"]],
    [["A-100"], ["Steel bracket,", "zinc plated"], ["4"], ["48.00"]],
    [["B-220"], ["Hinge"], ["12"], ["30.60"]],
    [["C-315"], ["Rubber seal for", "outdoor cabinets"], ["6"], ["17.40"]],
    [["D-400"], ["Cable ties"], ["100"], ["9.90"]],
]
INVOICE_SENDER = ["Northwind Supplies Ltd", "12 Harbour Road", "Bristol BS1 4QA"]
INVOICE_DETAILS = ["Invoice 2026-0419", "Date 27 Nov 2026", "Due 27 Dec 2026"]
INVOICE_ITEMS = [
    [["Item"], ["Qty"], ["Amount"]],
    [["Printer paper A4"], ["10"], ["45.00"]],
    [["Toner cartridge"], ["2"], ["138.00"]],
    [["Delivery"], ["1"], ["12.50"]],
]
INVOICE_TOTAL = ["Total due: 195.50 GBP"]
CHINESE_LEFT = ["今年春季光伏发电", "增长明显，主要得益", "于晴朗天气和屋顶", "新安装的组件。"]
CHINESE_RIGHT = ["风电场本季度较为", "平稳，但储能电池", "在夜间保障了电网", "的稳定运行。"]

ARC = ["FRESH BREAD BAKED DAILY SINCE 1952"]
